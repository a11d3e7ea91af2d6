package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"golang.org/x/term"

	"runner/report"
)

// newLogger logs to w (stderr): text on a terminal, JSON otherwise (cron,
// systemd and Kubernetes collect JSON better). Not on a terminal, records
// below warning wait behind a gate until the run does something, so a night
// in which nothing was due prints nothing at all (cron mails whatever a job
// prints). Warnings pass (they are rare and want reading: TLS verification
// off, a state file upgraded in place). With quiet only errors are logged.
func newLogger(format, level string, out io.Writer, quiet bool) (*slog.Logger, *logGate, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, usageError{msg: fmt.Sprintf("--log-level: unknown level %q", level), hint: "use debug, info, warn or error"}
	}
	if quiet {
		lvl = max(lvl, slog.LevelError)
	}
	terminal := isTerminal(out)
	w := &logWriter{w: out}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "" {
		format = "json"
		if terminal {
			format = "text"
		}
	}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, nil, usageError{msg: fmt.Sprintf("--log-format: unknown format %q", format), hint: "use text or json"}
	}
	gate := &logGate{isOpen: terminal, out: w, direct: slog.New(h)}
	return slog.New(&gatedHandler{inner: h, gate: gate}), gate, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// logGate holds info and debug records until the run has news (a renewal,
// a failure, an error); then it lets them out in order and passes later
// ones through. Warnings and errors always pass.
type logGate struct {
	mu     sync.Mutex
	isOpen bool
	held   []heldRecord
	out    *logWriter
	// direct logs past the gate: the one line a scheduled run always logs.
	direct *slog.Logger
}

// logWriter is where log lines go; a progress bar on the same terminal is
// cleared before each line, and draws itself again on its next update.
type logWriter struct {
	mu     sync.Mutex
	w      io.Writer
	before func()
}

func (l *logWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.before != nil {
		l.before()
	}
	return l.w.Write(p)
}

// beforeEachLine sets what is done before each log line is written.
func (g *logGate) beforeEachLine(f func()) {
	g.out.mu.Lock()
	defer g.out.mu.Unlock()
	g.out.before = f
}

// withOutput runs f while no log line is being written: whatever f writes
// to the log's stream (the progress bar) never interleaves with a line.
func (g *logGate) withOutput(f func()) {
	g.out.mu.Lock()
	defer g.out.mu.Unlock()
	f()
}

type heldRecord struct {
	h slog.Handler
	r slog.Record
}

// maxHeld bounds the records held back; the oldest are dropped first.
const maxHeld = 1000

// close holds records again, for the next run of a schedule; a terminal
// is never gated.
func (g *logGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.isOpen = isTerminal(g.out.w)
}

// open releases the held records.
func (g *logGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isOpen {
		return
	}
	g.isOpen = true
	for _, hr := range g.held {
		_ = hr.h.Handle(context.Background(), hr.r)
	}
	g.held = nil
}

// noticeRow opens the gate for a row that is news: renewed, deployed,
// verified or failed.
func (g *logGate) noticeRow(row report.Row) {
	if row.Status == report.Failed || row.NewCertificateID != 0 || row.RequestID != 0 {
		g.open()
	}
}

type gatedHandler struct {
	inner slog.Handler
	gate  *logGate
}

func (h *gatedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *gatedHandler) Handle(ctx context.Context, r slog.Record) error {
	g := h.gate
	g.mu.Lock()
	if g.isOpen || r.Level >= slog.LevelWarn {
		g.mu.Unlock()
		if r.Level >= slog.LevelError {
			g.open()
		}
		return h.inner.Handle(ctx, r)
	}
	if len(g.held) == maxHeld {
		g.held = g.held[1:]
	}
	g.held = append(g.held, heldRecord{h.inner, r.Clone()})
	g.mu.Unlock()
	return nil
}

func (h *gatedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &gatedHandler{inner: h.inner.WithAttrs(attrs), gate: h.gate}
}

func (h *gatedHandler) WithGroup(name string) slog.Handler {
	return &gatedHandler{inner: h.inner.WithGroup(name), gate: h.gate}
}
