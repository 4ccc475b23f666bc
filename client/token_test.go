package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// warnings records what a TokenWarning is told.
type warnings []string

func (w *warnings) warn(msg, file string) { *w = append(*w, msg+" "+file) }

func writeToken(t *testing.T, name, token string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAPIToken(t *testing.T) {
	const env = "BUILDKITE_EXPORTER_TEST_API_TOKEN"
	file := writeToken(t, "token", "from-file", 0o644)
	tests := []struct {
		name, file, env, want string
		warned                bool
	}{
		{name: "file, others can read it", file: file, env: "from-env", want: "from-file", warned: true},
		{name: "environment", env: " from-env\n", want: "from-env"},
		{name: "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(env, tt.env)
			var w warnings
			src, err := APIToken(tt.file, env, w.warn)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if src != nil {
				got, _ = src.Token()
			}
			if got != tt.want {
				t.Errorf("token %q, want %q", got, tt.want)
			}
			if (len(w) > 0) != tt.warned || (tt.warned && w[0] != "the API token file is readable by other users; chmod 600 it "+file) {
				t.Errorf("warnings %q", w)
			}
			if _, set := os.LookupEnv(env); set {
				t.Errorf("%s still set", env)
			}
		})
	}
	if _, err := APIToken(filepath.Join(t.TempDir(), "missing"), env, nil); err == nil || !strings.HasPrefix(err.Error(), "API token file: ") {
		t.Errorf("a missing file: %v", err)
	}
}

func TestAgentTokens(t *testing.T) {
	const env = "BUILDKITE_EXPORTER_TEST_AGENT_TOKEN"
	linux := writeToken(t, "linux", "tok-linux", 0o600)
	mac := writeToken(t, "mac", "tok-mac", 0o604)
	empty := writeToken(t, "empty", "", 0o600)
	tests := []struct {
		name     string
		files    []string
		env      string
		want     []string // name=token
		warnings []string
		err      string
	}{
		{name: "files", files: []string{linux, mac}, want: []string{linux + "=tok-linux", mac + "=tok-mac"},
			warnings: []string{"the agent token file is readable by other users; chmod 600 it " + mac}},
		{name: "environment", env: "tok-env", want: []string{env + "=tok-env"}},
		{name: "files before the environment", files: []string{linux}, env: "tok-env", want: []string{linux + "=tok-linux"},
			warnings: []string{env + " is ignored: an agent token file is given " + linux}},
		{name: "none"},
		{name: "twice", files: []string{linux, linux}, err: "agent token file \"" + linux + "\" is empty or given twice"},
		{name: "empty name", files: []string{""}, err: "agent token file \"\" is empty or given twice"},
		{name: "empty file", files: []string{empty}, err: "agent token file " + empty + ": empty"},
		{name: "missing file", files: []string{linux + "-missing"}, err: "agent token file: stat "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(env, tt.env)
			var w warnings
			tokens, err := AgentTokens(tt.files, env, w.warn)
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, nt := range tokens {
				tok, _ := nt.Source.Token()
				got = append(got, nt.Name+"="+tok)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") || strings.Join(w, "|") != strings.Join(tt.warnings, "|") {
				t.Errorf("tokens %q, warnings %q; want %q, %q", got, w, tt.want, tt.warnings)
			}
			if _, set := os.LookupEnv(env); set {
				t.Errorf("%s still set", env)
			}
		})
	}
}
