package client

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"unicode"
)

// TokenSource supplies the API token. The client asks for it before every
// request, so a source may rotate it.
type TokenSource interface {
	Token() (string, error)
}

type staticToken string

func (t staticToken) Token() (string, error) { return string(t), nil }

// StaticToken returns a TokenSource that always supplies token.
func StaticToken(token string) TokenSource { return staticToken(token) }

// maxTokenFileBytes bounds what FileToken reads: a token is tens of bytes, and
// a path pointed at a large file by mistake must not be slurped.
const maxTokenFileBytes = 64 << 10

// FileTokenSource reads the token from a file and re-reads it when the file
// changes. It is safe for concurrent use.
type FileTokenSource struct {
	path string
	kind string // "API token file" or "agent token file", in errors

	mu    sync.Mutex
	token string
	info  os.FileInfo // of the file the token was read from
}

// FileToken reads the token from a file, trimming surrounding white space,
// and re-reads it when the file changes. Every call to Token stats the file
// (size, modification time, inode and device), so a new file renamed or
// symlinked over the old one, as Kubernetes updates secrets, is picked up.
// It fails if the file is unreadable or holds no token. Errors name the path
// and never contain the token.
func FileToken(path string) (*FileTokenSource, error) { return fileToken(path, "API token file") }

func fileToken(path, kind string) (*FileTokenSource, error) {
	s := &FileTokenSource{path: path, kind: kind}
	if _, err := s.Token(); err != nil {
		return nil, err
	}
	return s, nil
}

// Token returns the file's token, re-reading the file if it changed since
// the last read.
func (s *FileTokenSource) Token() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Stat before reading: if the file changes between the two, the next
	// call sees a different stat and reads again.
	fi, err := os.Stat(s.path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.kind, err)
	}
	if s.info != nil && sameFileVersion(s.info, fi) {
		return s.token, nil
	}
	// A directory (a Secret mounted at the path meant for one of its keys)
	// would fail later with a vaguer error; a FIFO would block the read,
	// and the scrape with it.
	if fi.IsDir() {
		return "", fmt.Errorf("%s %s: is a directory, not a file", s.kind, s.path)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s %s: is not a regular file", s.kind, s.path)
	}
	tok, err := readTokenFile(s.path, s.kind)
	if err != nil {
		return "", err
	}
	s.token, s.info = tok, fi
	return tok, nil
}

// WorldReadable reports whether the token file's mode lets any user read it,
// for a warning at startup. It is false when the file cannot be stat'ed.
func (s *FileTokenSource) WorldReadable() bool {
	fi, err := os.Stat(s.path)
	return err == nil && fi.Mode().Perm()&0o004 != 0
}

func sameFileVersion(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode()
}

func readTokenFile(path, kind string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", kind, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		// The *PathError names the path and the cause, never the content.
		return "", fmt.Errorf("%s: %w", kind, err)
	}
	if len(b) > maxTokenFileBytes {
		return "", fmt.Errorf("%s %s: larger than %d bytes", kind, path, maxTokenFileBytes)
	}
	tok := strings.TrimSpace(string(b))
	if err := checkTokenContent(tok); err != nil {
		return "", fmt.Errorf("%s %s: %w", kind, path, err)
	}
	return tok, nil
}

// checkTokenContent says what is wrong with a token that cannot be sent as
// it is, in words that point at the usual cause (an editor's byte-order
// mark, a UTF-16 file, two tokens pasted into one file) and never quote it.
// Without it such a token would pass startup and fail every scrape. token
// has had its surrounding white space trimmed.
func checkTokenContent(token string) error {
	switch {
	case token == "":
		return errors.New("empty")
	case strings.HasPrefix(token, "\xef\xbb\xbf"), strings.HasPrefix(token, "\xff\xfe"), strings.HasPrefix(token, "\xfe\xff"):
		return errors.New("starts with a byte-order mark; save it as plain ASCII")
	case strings.IndexByte(token, 0) >= 0:
		return errors.New("contains a NUL byte")
	case strings.ContainsAny(token, "\n\r"):
		return errors.New("has more than one line")
	case strings.IndexFunc(token, unicode.IsSpace) >= 0:
		return errors.New("contains white space")
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c < '!' || c > '~' {
			return errors.New("contains a control character or a byte outside printable ASCII")
		}
	}
	return nil
}

// TokenWarning is told, with a message and the file concerned, of a token
// setting that works but should change. It may be nil.
type TokenWarning func(msg, file string)

// APIToken returns the token of file, re-read when it changes, or else
// the token in the environment variable env, which it unsets either way so
// that no child process inherits it. It is nil, without error, when neither
// holds one. The token is never a flag value: flags show in process
// listings.
func APIToken(file, env string, warn TokenWarning) (TokenSource, error) {
	token := envToken(env)
	switch {
	case file != "":
		return checkedFileToken(file, "API token file", warn)
	case token != "":
		return envStaticToken(env, token)
	}
	return nil, nil
}

// NamedToken is an agent token and what names it in logs: its file or its
// environment variable.
type NamedToken struct {
	Name   string
	Source TokenSource
}

// AgentTokens returns the tokens of files (one per cluster, each re-read
// when it changes), or else the one token in the environment variable env,
// which it unsets either way. None is fine.
func AgentTokens(files []string, env string, warn TokenWarning) ([]NamedToken, error) {
	var out []NamedToken
	seen := map[string]bool{}
	for _, file := range files {
		if file == "" || seen[file] {
			return nil, fmt.Errorf("agent token file %q is empty or given twice", file)
		}
		seen[file] = true
		src, err := checkedFileToken(file, "agent token file", warn)
		if err != nil {
			return nil, err
		}
		out = append(out, NamedToken{Name: file, Source: src})
	}
	switch token := envToken(env); {
	case token != "" && len(out) > 0 && warn != nil:
		warn(env+" is ignored: an agent token file is given", files[0])
	case token != "" && len(out) == 0:
		src, err := envStaticToken(env, token)
		if err != nil {
			return nil, err
		}
		out = append(out, NamedToken{Name: env, Source: src})
	}
	return out, nil
}

// checkedFileToken reads a token file and warns when others can read it.
func checkedFileToken(file, kind string, warn TokenWarning) (*FileTokenSource, error) {
	src, err := fileToken(file, kind)
	if err != nil {
		return nil, err
	}
	if src.WorldReadable() && warn != nil {
		warn("the "+kind+" is readable by other users; chmod 600 it", file)
	}
	return src, nil
}

// envStaticToken checks the content of token, the value of env, as a
// file's is checked.
func envStaticToken(env, token string) (TokenSource, error) {
	if err := checkTokenContent(token); err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	return StaticToken(token), nil
}

// envToken returns the trimmed value of env and unsets it.
func envToken(env string) string {
	token := strings.TrimSpace(os.Getenv(env))
	os.Unsetenv(env)
	return token
}
