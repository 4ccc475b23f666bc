package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerInstr is one Dockerfile instruction with its line continuations
// joined, in the build stage it belongs to.
type dockerInstr struct {
	stage int // index of the FROM that opened the stage
	cmd   string
	args  string
}

func parseDockerfile(t *testing.T) []dockerInstr {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstr
	stage := -1
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasPrefix(trimmed, "#") { // comment inside a continuation
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		full := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, dockerInstr{stage: stage, cmd: cmd, args: strings.TrimSpace(args)})
	}
	if stage < 1 {
		t.Fatalf("Dockerfile has %d stage(s); want a multi-stage build", stage+1)
	}
	return out
}

// finalStage returns the instructions of the last stage: the image users run.
func finalStage(instrs []dockerInstr) []dockerInstr {
	last := instrs[len(instrs)-1].stage
	var out []dockerInstr
	for _, in := range instrs {
		if in.stage == last {
			out = append(out, in)
		}
	}
	return out
}

func TestDockerfileRuntimeImage(t *testing.T) {
	final := finalStage(parseDockerfile(t))

	var exposed, users, entrypoints []string
	copies := map[string]bool{}
	for _, in := range final {
		switch in.cmd {
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "USER":
			users = append(users, in.args)
		case "ENTRYPOINT":
			entrypoints = append(entrypoints, in.args)
		case "COPY":
			var fields []string
			for _, f := range strings.Fields(in.args) {
				if !strings.HasPrefix(f, "--") {
					fields = append(fields, f)
				}
			}
			if len(fields) >= 2 {
				copies[fields[len(fields)-1]] = true
			}
		}
	}

	if !slices.Contains(exposed, "9260") && !slices.Contains(exposed, "9260/tcp") {
		t.Errorf("final stage EXPOSE %v; want 9260 (the default --web.listen-address)", exposed)
	}

	if len(users) == 0 {
		t.Error("final stage sets no USER; the exporter must not run as root")
	} else {
		user, _, _ := strings.Cut(users[len(users)-1], ":")
		if user == "" || user == "root" || user == "0" {
			t.Errorf("final stage USER %q; want a non-root user", users[len(users)-1])
		}
	}

	if len(entrypoints) != 1 {
		t.Fatalf("final stage has %d ENTRYPOINTs; want 1", len(entrypoints))
	}
	ep := regexp.MustCompile(`^\[\s*"([^"]+)"`).FindStringSubmatch(entrypoints[0])
	if ep == nil {
		t.Fatalf("ENTRYPOINT %s is not in exec form ([\"/path\", ...]); the shell form breaks signal handling", entrypoints[0])
	}
	if ep[1] != "/bin/buildkite_exporter" {
		t.Errorf("ENTRYPOINT runs %s; want /bin/buildkite_exporter", ep[1])
	}
	if !copies[ep[1]] {
		t.Errorf("ENTRYPOINT runs %s, but the final stage copies only to %v", ep[1], copies)
	}
}

var versionVar = regexp.MustCompile(`-X\s+github\.com/prometheus/common/version\.(\w+)=`)

// ldflagVars returns the prometheus/common/version variables a text sets, sorted.
func ldflagVars(text string) []string {
	var vars []string
	for _, m := range versionVar.FindAllStringSubmatch(text, -1) {
		vars = append(vars, m[1])
	}
	slices.Sort(vars)
	return slices.Compact(vars)
}

func TestDockerfileMatchesMakefile(t *testing.T) {
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	// The Makefile writes the package path once, as $(VERSION_PKG).
	mk := strings.ReplaceAll(string(makefile), "$(VERSION_PKG)", "github.com/prometheus/common/version")

	want := []string{"Branch", "BuildDate", "BuildUser", "Revision", "Version"}
	if got := ldflagVars(mk); !slices.Equal(got, want) {
		t.Errorf("Makefile sets version variables %v; want %v", got, want)
	}
	if got := ldflagVars(string(dockerfile)); !slices.Equal(got, ldflagVars(mk)) {
		t.Errorf("Dockerfile sets version variables %v, the Makefile %v", got, ldflagVars(mk))
	}

	// Every --build-arg make docker passes is declared in the Dockerfile.
	declared := map[string]bool{}
	for _, in := range parseDockerfile(t) {
		if in.cmd == "ARG" {
			name, _, _ := strings.Cut(in.args, "=")
			declared[name] = true
		}
	}
	args := regexp.MustCompile(`--build-arg\s+(\w+)=`).FindAllStringSubmatch(mk, -1)
	if len(args) == 0 {
		t.Error("make docker passes no --build-arg; the image would carry no version")
	}
	for _, m := range args {
		if !declared[m[1]] {
			t.Errorf("make docker passes --build-arg %s, which the Dockerfile does not declare", m[1])
		}
	}
}

// TestDockerfileGoVersion keeps the build image able to build go.mod's Go.
func TestDockerfileGoVersion(t *testing.T) {
	gomod, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	instrs := parseDockerfile(t)
	from := instrs[0]
	img := regexp.MustCompile(`^golang:(\d+\.\d+)`).FindStringSubmatch(from.args)
	if img == nil {
		t.Fatalf("first stage FROM %s; want a golang:X.Y image", from.args)
	}
	if img[1] != string(m[1]) {
		t.Errorf("build stage uses golang:%s, go.mod says go %s", img[1], m[1])
	}
}
