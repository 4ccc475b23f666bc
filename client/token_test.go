package client

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// badTokenContents are token files that would pass as a token until the
// first request: each must be refused, naming the problem and never the
// token.
var badTokenContents = []struct {
	name, content, problem string
}{
	{"UTF-8 byte-order mark", "\xef\xbb\xbfbkua_secret_1\n", "starts with a byte-order mark; save it as plain ASCII"},
	{"UTF-16 LE file", "\xff\xfeb\x00k\x00u\x00a\x00", "starts with a byte-order mark; save it as plain ASCII"},
	{"UTF-16 BE byte-order mark", "\xfe\xffbkua_secret_1", "starts with a byte-order mark; save it as plain ASCII"},
	{"NUL byte", "bkua_secret_1\x00\n", "contains a NUL byte"},
	{"two lines", "bkua_secret_1\nbkua_secret_2\n", "has more than one line"},
	{"two lines, CRLF", "bkua_secret_1\r\nbkua_secret_2\r\n", "has more than one line"},
	{"inner space", "bkua_secret 1\n", "contains white space"},
	{"inner tab", "bkua_secret\t1", "contains white space"},
	{"no-break space", "bkua_secret\u00a01", "contains white space"},
	{"control character", "bkua_secret\x1b1", "contains a control character or a byte outside printable ASCII"},
	{"non-ASCII", "bkua_sécret_1", "contains a control character or a byte outside printable ASCII"},
	{"empty", "", "empty"},
	{"white space only", " \r\n\t\n", "empty"},
}

func writeRaw(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkTokenError checks that err names the file and the problem and
// holds nothing of the token.
func checkTokenError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error quotes the token: %v", err)
	}
}

// A bad token file is refused when it is first read and, rotated in, on
// the next Token call, with the same error; once fixed it is used again.
func TestFileTokenContent(t *testing.T) {
	for _, tt := range badTokenContents {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			want := "API token file " + path + ": " + tt.problem
			writeRaw(t, path, tt.content)
			_, err := FileToken(path)
			checkTokenError(t, err, want)

			writeRaw(t, path, "good_token\n")
			src, err := FileToken(path)
			if err != nil {
				t.Fatal(err)
			}
			writeRaw(t, path, tt.content+strings.Repeat(" ", 40)) // a new size: a new version
			tok, err := src.Token()
			checkTokenError(t, err, want)
			if tok != "" {
				t.Errorf("a failed read returned a token")
			}
			writeRaw(t, path, "good_token_2\n")
			if tok, err := src.Token(); err != nil || tok != "good_token_2" {
				t.Errorf("after the fix: %q, %v", tok, err)
			}
		})
	}
}

// What stands at the path may not be a file at all, at startup or after
// a rotation: a directory, or a FIFO whose read would block the scrape.
func TestFileTokenNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, path, problem string
	}{
		{"directory", t.TempDir(), "is a directory, not a file"},
		{"FIFO", fifo, "is not a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := fileToken(tt.path, "agent token file")
			checkTokenError(t, err, "agent token file "+tt.path+": "+tt.problem)

			link := filepath.Join(t.TempDir(), "token")
			writeRaw(t, filepath.Join(filepath.Dir(link), "v1"), "good_token\n")
			if err := os.Symlink("v1", link); err != nil {
				t.Fatal(err)
			}
			src, err := fileToken(link, "agent token file")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tt.path, link); err != nil {
				t.Fatal(err)
			}
			_, err = src.Token()
			checkTokenError(t, err, "agent token file "+link+": "+tt.problem)
		})
	}
}

// A token from the environment is checked as a file's is, and the error
// names the variable; APIToken and AgentTokens refuse the same contents
// from a file.
func TestTokenContentFromEnvAndFiles(t *testing.T) {
	const env = "BUILDKITE_EXPORTER_TEST_TOKEN"
	for _, tt := range badTokenContents {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "token")
			writeRaw(t, path, tt.content)
			_, err := APIToken(path, env, nil)
			checkTokenError(t, err, "API token file "+path+": "+tt.problem)
			_, err = AgentTokens([]string{path}, env, nil)
			checkTokenError(t, err, "agent token file "+path+": "+tt.problem)

			if strings.TrimSpace(tt.content) == "" || strings.Contains(tt.content, "\x00") {
				return // an empty variable is an unset one; no variable holds a NUL
			}
			t.Setenv(env, tt.content)
			_, err = APIToken("", env, nil)
			checkTokenError(t, err, env+": "+tt.problem)
			t.Setenv(env, tt.content)
			_, err = AgentTokens(nil, env, nil)
			checkTokenError(t, err, env+": "+tt.problem)
		})
	}
}
