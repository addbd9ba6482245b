package miosa

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// SnapshotStatus is where a snapshot stands. The set is open: a status this
// SDK does not know is kept as the server sent it.
type SnapshotStatus string

// Known snapshot statuses. A snapshot moves from creating through uploading
// to ready, or ends failed; deleted ones are no longer listed.
const (
	SnapshotCreating  SnapshotStatus = "creating"  // the sandbox's state is being captured
	SnapshotUploading SnapshotStatus = "uploading" // the capture is being stored
	SnapshotReady     SnapshotStatus = "ready"     // usable: Restore and Fork can branch from it
	SnapshotFailed    SnapshotStatus = "failed"    // ended without a usable snapshot
	SnapshotDeleted   SnapshotStatus = "deleted"   // removed; it can no longer be used
	SnapshotRestoring SnapshotStatus = "restoring" // ready, and a restore from it is in progress
)

// Snapshot is a point-in-time checkpoint of a sandbox: its disk, from which
// Restore makes new sandboxes.
type Snapshot struct {
	ID string `json:"id"`
	// SandboxID is the sandbox the snapshot was taken of.
	SandboxID string `json:"sandbox_id"`
	// Status is read from "status", or "state" where a server names it so.
	Status  SnapshotStatus `json:"status"`
	Comment string         `json:"comment"`
	// Keep is true for a snapshot the server keeps until it is deleted,
	// whatever its retention.
	Keep bool `json:"keep"`
	// Retention is how long the server keeps the snapshot (from
	// retention_seconds); zero when it sent none.
	Retention time.Duration `json:"-"`
	// ExpiresAt, CreatedAt and LastUsedAt are zero when the server did not
	// send them (a kept snapshot does not expire).
	ExpiresAt  time.Time `json:"expires_at"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	// Raw is the object exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// snapshotWire is a snapshot as servers send it: ids as strings or
// integers, the status under either name, times in every known form.
type snapshotWire struct {
	ID               wire.ID        `json:"id"`
	SandboxID        wire.ID        `json:"sandbox_id"`
	Status           SnapshotStatus `json:"status"`
	State            SnapshotStatus `json:"state"`
	Comment          string         `json:"comment"`
	Keep             bool           `json:"keep"`
	RetentionSeconds wire.Seconds   `json:"retention_seconds"`
	ExpiresAt        wire.Time      `json:"expires_at"`
	CreatedAt        wire.Time      `json:"created_at"`
	LastUsedAt       wire.Time      `json:"last_used_at"`
}

// UnmarshalJSON decodes a snapshot and keeps a copy of the raw object in
// Raw. An object without an id is an error: it names no snapshot.
func (s *Snapshot) UnmarshalJSON(data []byte) error {
	var w snapshotWire
	if err := decodeResource(data, &w, (*string)(&w.ID)); err != nil {
		return err
	}
	*s = Snapshot{
		ID: string(w.ID), SandboxID: string(w.SandboxID), Status: cmp.Or(w.Status, w.State),
		Comment: w.Comment, Keep: w.Keep, Retention: time.Duration(w.RetentionSeconds),
		ExpiresAt: w.ExpiresAt.Time, CreatedAt: w.CreatedAt.Time, LastUsedAt: w.LastUsedAt.Time,
		Raw: append(json.RawMessage(nil), data...),
	}
	return nil
}

// SnapshotCreateParams describes a snapshot to take. Every field is
// optional and sent only when set.
type SnapshotCreateParams struct {
	// Comment labels the snapshot, for people listing them later.
	Comment string
	// Keep asks the server to keep the snapshot until it is deleted.
	Keep bool
	// Retention is how long the server should keep the snapshot, sent as
	// whole seconds (retention_seconds), a fraction rounded up. Negative
	// durations are refused.
	Retention time.Duration
}

// snapshotCreateBody is the POST body: only the keys that are set.
type snapshotCreateBody struct {
	Comment          string `json:"comment,omitzero"`
	Keep             bool   `json:"keep,omitzero"`
	RetentionSeconds *int64 `json:"retention_seconds,omitempty"`
}

func (p SnapshotCreateParams) body() (snapshotCreateBody, error) {
	var retention *time.Duration // unset: not sent
	if p.Retention != 0 {
		retention = &p.Retention
	}
	secs, err := wholeSeconds("snapshot retention", retention)
	return snapshotCreateBody{Comment: p.Comment, Keep: p.Keep, RetentionSeconds: secs}, err
}

// SnapshotFailedError is returned by Snapshots.WaitReady when the snapshot
// ended "failed": the server answered, and there is no snapshot to use.
// Snapshot holds it as last listed (its Raw may say why).
//
// It wraps no other error and matches no sentinel: it is not a timeout
// (ErrWaitTimeout) and not a refused call (an *APIError), so waiting longer
// or sending the same call again will not help. Find it with errors.As.
type SnapshotFailedError struct {
	// Snapshot is the failed snapshot.
	Snapshot *Snapshot
}

// Error formats the failure as
// `miosa: sandbox sb_1: snapshot snap_1 ended "failed"` (without the
// sandbox when the server did not name it).
func (e *SnapshotFailedError) Error() string {
	if e.Snapshot == nil {
		return "miosa: snapshot failed"
	}
	msg := "miosa: "
	if e.Snapshot.SandboxID != "" {
		msg += "sandbox " + e.Snapshot.SandboxID + ": "
	}
	return msg + fmt.Sprintf("snapshot %s ended %q", e.Snapshot.ID, e.Snapshot.Status)
}

// SnapshotsService checkpoints sandboxes and branches new sandboxes from
// the checkpoints: /sandboxes/{id}/snapshots and /sandboxes/{id}/restore.
type SnapshotsService service

// Create asks the server to snapshot a sandbox
// (POST /sandboxes/{id}/snapshots) and returns the snapshot, usually not
// ready yet; WaitReady waits for it. The snapshot captures the sandbox as it
// is when the call arrives. The call carries an Idempotency-Key (generated,
// or WithIdempotencyKey's), the same on every retry, so it takes at most one
// snapshot.
func (s *SnapshotsService) Create(ctx context.Context, sandboxID string, params SnapshotCreateParams, opts ...Option) (*Snapshot, error) {
	path, err := sandboxPath(sandboxID, "/snapshots")
	if err != nil {
		return nil, err
	}
	body, err := params.body()
	if err != nil {
		return nil, err
	}
	return sendForObject[Snapshot](ctx, s.client, call{method: http.MethodPost, path: path, body: body, keyed: true}, opts, "snapshot")
}

// List fetches a sandbox's snapshots (GET /sandboxes/{id}/snapshots); the
// server leaves deleted ones out. An unknown sandbox fails with an error
// matching ErrNotFound.
func (s *SnapshotsService) List(ctx context.Context, sandboxID string, opts ...Option) ([]Snapshot, error) {
	path, err := sandboxPath(sandboxID, "/snapshots")
	if err != nil {
		return nil, err
	}
	items, _, err := sendForList[Snapshot](ctx, s.client, call{method: http.MethodGet, path: path}, opts, "snapshots")
	return items, err
}

const (
	defaultSnapshotTimeout  = 10 * time.Minute
	defaultSnapshotInterval = 2 * time.Second
)

// WaitReady polls GET /sandboxes/{id}/snapshots (every 2 s by default; the
// API has no single-snapshot read) until snapshot snapshotID is ready, and
// returns it. It sends only reads, each tried once per poll. The wait ends:
//   - with the snapshot and a nil error once it is "ready";
//   - with a *SnapshotFailedError once it is "failed";
//   - with an error matching ErrNotFound once it is "deleted" or no longer
//     listed, or when the sandbox is unknown (a 404);
//   - with an error matching ErrWaitTimeout when WaitOptions.Timeout
//     (default 10 min) passes;
//   - at once on another permanent API error (such as 401 or 403);
//   - with the context's error when ctx ends.
//
// Transient errors (429, 5xx, network) do not end the wait; a Retry-After
// longer than the interval is honoured. WaitOptions.PollOnly has no effect
// here. The snapshot last seen is returned with every error after the first
// poll that listed it.
func (s *SnapshotsService) WaitReady(ctx context.Context, sandboxID, snapshotID string, wait WaitOptions, opts ...Option) (*Snapshot, error) {
	if _, err := snapshotPath(sandboxID, snapshotID); err != nil {
		return nil, err
	}
	what := "snapshot " + snapshotID + " of sandbox " + sandboxID
	p, err := wait.poller(s.client, what+" to be ready", defaultSnapshotTimeout, defaultSnapshotInterval, opts)
	if err != nil {
		return nil, err
	}
	var last *Snapshot
	seen := "it was never listed" // where the snapshot was last seen, for a timeout
	err = p.run(ctx, func(ctx context.Context) (bool, error) {
		snapshots, err := s.List(ctx, sandboxID, p.opts...)
		if err != nil {
			return false, err
		}
		i := slices.IndexFunc(snapshots, func(sn Snapshot) bool { return sn.ID == snapshotID })
		if i < 0 {
			return false, fmt.Errorf("miosa: %s is not listed while waiting for it to be ready: %w", what, ErrNotFound)
		}
		last = &snapshots[i]
		seen = fmt.Sprintf("it is %q", last.Status)
		switch last.Status {
		case SnapshotDeleted:
			return false, fmt.Errorf("miosa: %s was deleted while waiting for it to be ready: %w", what, ErrNotFound)
		case SnapshotFailed:
			return false, &SnapshotFailedError{Snapshot: last}
		}
		return last.Status == SnapshotReady, nil
	})
	if errors.Is(err, errLocalTimeout) {
		err = p.timedOut(seen)
	}
	return last, err
}

// Restore makes a NEW sandbox from a snapshot
// (POST /sandboxes/{id}/restore/{snapshot_id}) and returns it, usually still
// booting: WaitUntilReady waits for it. The snapshot's own sandbox is not
// touched. The call carries an Idempotency-Key (generated, or
// WithIdempotencyKey's), the same on every retry, so a lost answer never
// makes a second sandbox. A snapshot that is not ready yet is refused
// (409 SNAPSHOT_NOT_READY, which servers mark retryable and the SDK then
// retries).
func (s *SnapshotsService) Restore(ctx context.Context, sandboxID, snapshotID string, opts ...Option) (*Sandbox, error) {
	escaped, err := pathID("snapshot", snapshotID)
	if err != nil {
		return nil, err
	}
	path, err := sandboxPath(sandboxID, "/restore/"+escaped)
	if err != nil {
		return nil, err
	}
	return sendForObject[Sandbox](ctx, s.client, call{method: http.MethodPost, path: path, body: struct{}{}, keyed: true},
		opts, "sandbox", "computer")
}

// Delete deletes a snapshot (DELETE /sandboxes/{id}/snapshots/{snapshot_id});
// sandboxes restored from it are not affected. Like every DELETE it is
// retried; a 404 to a retry counts as done, since the attempt whose answer
// was lost may have deleted it.
func (s *SnapshotsService) Delete(ctx context.Context, sandboxID, snapshotID string, opts ...Option) error {
	path, err := snapshotPath(sandboxID, snapshotID)
	if err != nil {
		return err
	}
	_, err = s.client.send(ctx, call{method: http.MethodDelete, path: path, goneIsDone: true}, opts)
	return err
}

// snapshotPath returns /sandboxes/{id}/snapshots/{snapshot_id} with both
// ids escaped.
func snapshotPath(sandboxID, snapshotID string) (string, error) {
	escaped, err := pathID("snapshot", snapshotID)
	if err != nil {
		return "", err
	}
	return sandboxPath(sandboxID, "/snapshots/"+escaped)
}
