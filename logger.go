package main

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	sloggokit "github.com/tjhop/slog-gokit"
)

// newLogger returns the exporter's logger and the *slog.Logger that
// exporter-toolkit takes, bridged to it. Lines of both have the same keys
// in the same order: ts, level, caller, msg, then the rest.
func newLogger(w io.Writer, format, lvl string) (log.Logger, *slog.Logger) {
	var out log.Logger
	if format == "json" {
		out = log.NewJSONLogger(log.NewSyncWriter(w))
	} else {
		out = log.NewLogfmtLogger(log.NewSyncWriter(w))
	}
	out = level.NewFilter(out, level.Allow(level.ParseDefault(lvl, level.InfoValue())))
	// ts first, ahead of the level that level.Info and slog-gokit put
	// first.
	stamped := log.LoggerFunc(func(keyvals ...any) error {
		return out.Log(append([]any{"ts", log.DefaultTimestampUTC()}, keyvals...)...)
	})
	toolkit := slog.New(untimed{sloggokit.NewGoKitHandler(plainValues(stamped), slogLevel(lvl))})
	return log.With(stamped, "caller", log.DefaultCaller), toolkit
}

// untimed drops the slog record's time, which slog-gokit would log as
// "time" besides the logger's ts.
type untimed struct{ slog.Handler }

func (h untimed) Handle(ctx context.Context, r slog.Record) error {
	r.Time = time.Time{}
	return h.Handler.Handle(ctx, r)
}

func (h untimed) WithAttrs(attrs []slog.Attr) slog.Handler {
	return untimed{h.Handler.WithAttrs(attrs)}
}

func (h untimed) WithGroup(name string) slog.Handler { return untimed{h.Handler.WithGroup(name)} }

// plainValues unwraps the slog.Values that slog-gokit passes for all but
// strings: as fmt.Stringers they would be JSON strings ("http2":"false").
func plainValues(next log.Logger) log.Logger {
	return log.LoggerFunc(func(keyvals ...any) error {
		for i, v := range keyvals {
			if sv, ok := v.(slog.Value); ok {
				keyvals[i] = sv.Any()
			}
		}
		return next.Log(keyvals...)
	})
}

func slogLevel(lvl string) slog.Level {
	switch lvl {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
