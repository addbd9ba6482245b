package miosa

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Statuses that the native sandbox routes (/sandboxes/{id}/pause, /resume,
// /extend, snapshot restores) report besides the computer statuses.
const (
	StatusProvisioning ComputerStatus = "provisioning" // new, not booted yet: the native routes' "creating"
	StatusPaused       ComputerStatus = "paused"       // suspended by Pause until Resume
)

// Extend gives a sandbox more time before its timeout stops it
// (POST /sandboxes/{id}/extend, {"timeout_sec": by}) and returns the
// sandbox. by is sent in whole seconds, a fraction rounded up; it must be
// positive. Servers are known to read the number as a new timeout counted
// from the moment the call arrives, so the timeout then runs out by after
// the call; the returned sandbox's Timeout says what the server applied.
//
// Extending twice is not extending once, so the call is not sent again once
// it may have reached the server: a lost answer is an error matching
// ErrOutcomeUnknown (Get the sandbox to see its timeout).
func (s *SandboxesService) Extend(ctx context.Context, id string, by time.Duration, opts ...Option) (*Sandbox, error) {
	if by <= 0 {
		return nil, fmt.Errorf("%w: extending sandbox %q by %s: the extension must be positive", ErrInvalidParams, id, by)
	}
	secs, _ := wholeSeconds("extension", &by) // by > 0: it cannot fail
	body := struct {
		TimeoutSec int64 `json:"timeout_sec"`
	}{*secs}
	return s.lifetime(ctx, id, "/extend", call{method: http.MethodPost, body: body}, opts)
}

// Pause suspends a sandbox (POST /sandboxes/{id}/pause) and returns it,
// in state StatusPaused once the server has suspended it. A paused sandbox
// keeps its disk and refuses exec (409) until Resume. Pausing a paused
// sandbox changes nothing, so the call is retried like a read.
func (s *SandboxesService) Pause(ctx context.Context, id string, opts ...Option) (*Sandbox, error) {
	return s.lifetime(ctx, id, "/pause", call{method: http.MethodPost, body: struct{}{}, idempotent: true}, opts)
}

// Resume wakes a paused sandbox (POST /sandboxes/{id}/resume) and returns
// it, usually still booting: WaitUntilReady waits for it. The call carries
// an Idempotency-Key (generated, or WithIdempotencyKey's), the same on every
// retry, and is retried as a create is.
func (s *SandboxesService) Resume(ctx context.Context, id string, opts ...Option) (*Sandbox, error) {
	return s.lifetime(ctx, id, "/resume", call{method: http.MethodPost, body: struct{}{}, keyed: true}, opts)
}

// lifetime sends op to /sandboxes/{id}{action} and decodes the sandbox the
// native route answers.
func (s *SandboxesService) lifetime(ctx context.Context, id, action string, op call, opts []Option) (*Sandbox, error) {
	path, err := sandboxPath(id, action)
	if err != nil {
		return nil, err
	}
	op.path = path
	return sendForObject[Sandbox](ctx, s.client, op, opts, "sandbox", "computer")
}
