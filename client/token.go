package client

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
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
func FileToken(path string) (*FileTokenSource, error) {
	s := &FileTokenSource{path: path}
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
		return "", fmt.Errorf("API token file: %w", err)
	}
	if s.info != nil && sameFileVersion(s.info, fi) {
		return s.token, nil
	}
	tok, err := readTokenFile(s.path)
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

func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("API token file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		// The *PathError names the path and the cause, never the content.
		return "", fmt.Errorf("API token file: %w", err)
	}
	if len(b) > maxTokenFileBytes {
		return "", fmt.Errorf("API token file %s: larger than %d bytes", path, maxTokenFileBytes)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("API token file %s: empty", path)
	}
	return tok, nil
}
