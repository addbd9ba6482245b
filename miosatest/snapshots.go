package miosatest

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Snapshots: a checkpoint of a sandbox is its settings as they were and a
// copy of its file tree, on disk beside the machines' trees. It moves from
// "creating" through "uploading" to "ready" (or "failed"), one
// BuildStepDelay per step; a restore is a new machine that starts with a
// copy of the snapshot's files, as a fork is one that starts with its
// source's.

// Snapshot statuses, as the API names them.
const (
	snapshotCreating  = "creating"
	snapshotUploading = "uploading"
	snapshotReady     = "ready"
	snapshotFailed    = "failed"
	snapshotDeleted   = "deleted"
)

// defaultSnapshotRetention is how long a snapshot that is not kept lasts
// when its create named no retention. No SDK says; a week is invented.
const defaultSnapshotRetention = 7 * 24 * time.Hour

// snapshot is one checkpoint. Fields are guarded by engine.mu.
type snapshot struct {
	seq        int
	id         string
	sandboxID  string
	status     string
	comment    string
	keep       bool
	retention  time.Duration
	errText    string   // why it failed
	source     *machine // the sandbox's settings when it was taken
	createdAt  time.Time
	updatedAt  time.Time
	lastUsedAt time.Time
	readyDue   time.Time // when its steps are due to end
}

// snapshotStore holds the snapshots by id, and the reasons for the next
// ones that must fail. It is guarded by engine.mu.
type snapshotStore struct {
	byID     map[string]*snapshot
	failures failQueue // the next snapshots that must fail
}

// view is the snapshot as the API sends it. "error" is this fake's own: no
// SDK shows how a server explains a failed snapshot.
func (s *snapshot) view() map[string]any {
	var expires time.Time
	if !s.keep {
		expires = s.createdAt.Add(s.retention)
	}
	v := map[string]any{
		"id": s.id, "sandbox_id": s.sandboxID, "status": s.status, "comment": s.comment, "keep": s.keep,
		"retention_seconds": int64(s.retention / time.Second), "expires_at": nullableTime(expires),
		"last_used_at": nullableTime(s.lastUsedAt),
		"created_at":   timeString(s.createdAt), "updated_at": timeString(s.updatedAt),
	}
	if s.status == snapshotFailed {
		v["error"] = s.errText
	}
	return v
}

// snapshotTree names a snapshot's file tree for localShell: beside the
// machines' trees, under a name no machine id can take.
func snapshotTree(id string) string { return filepath.Join(".snapshots", id) }

// copyTree copies the file tree from (a machine's id or a snapshotTree) to
// the new tree to. A machine whose tree was never written has no files, and
// neither has its copy.
func (s *localShell) copyTree(from, to string) error {
	s.mu.Lock()
	src, err := s.tree(from)
	var dst string
	if err == nil {
		dst, err = s.tree(to)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return os.CopyFS(dst, os.DirFS(src))
}

// createSnapshot serves POST /sandboxes/{id}/snapshots on a running
// sandbox: its files are copied at once, and the snapshot, answered 201
// under "data", moves on from "creating" after that.
func (e *engine) createSnapshot(w http.ResponseWriter, r *http.Request) {
	s := &snapshot{sandboxID: r.PathValue("id"), id: newID("snap_"), status: snapshotCreating}
	var retentionSec int64
	if !readFields(w, r, []bodyField{
		{"comment", &s.comment, false, "a string"}, {"keep", &s.keep, false, "a boolean"},
		{"retention_seconds", &retentionSec, false, "an integer number of seconds"},
	}) {
		return
	}
	if retentionSec < 0 || retentionSec > int64(maxRetention/time.Second) {
		invalid(w, "retention_seconds must be between 0 and %d", int64(maxRetention/time.Second))
		return
	}
	s.retention = cmp.Or(time.Duration(retentionSec)*time.Second, defaultSnapshotRetention)
	if !e.running(w, "sandbox", s.sandboxID) {
		return
	}
	if err := e.shell.copyTree(s.sandboxID, snapshotTree(s.id)); err != nil {
		writeError(w, http.StatusInternalServerError, "INTERNAL", "copying the sandbox's files: "+err.Error())
		return
	}
	e.mu.Lock()
	m := e.machines[s.sandboxID]
	var rp reply
	if m == nil {
		rp = errorReply(http.StatusNotFound, "NOT_FOUND", "sandbox %q not found", s.sandboxID)
	} else {
		e.addSnapshot(s, m)
		rp = dataReply(http.StatusCreated, s.view())
	}
	e.mu.Unlock()
	if m == nil {
		_ = e.shell.removeTree(snapshotTree(s.id))
	}
	e.write(w, rp)
}

// maxRetention is the longest retention the fake accepts: a year.
const maxRetention = 365 * 24 * time.Hour

// addSnapshot stores s, taken of m, and moves it along; the caller holds
// engine.mu.
func (e *engine) addSnapshot(s *snapshot, m *machine) {
	if e.snapshots.byID == nil {
		e.snapshots.byID = map[string]*snapshot{}
	}
	e.seq++
	s.seq, s.source = e.seq, m.copySettings()
	s.createdAt, s.updatedAt = e.now(), e.now()
	s.readyDue = s.createdAt.Add(2 * e.cfg.BuildStepDelay)
	if reason, ok := e.snapshots.failures.next(); ok {
		s.errText = reason
	}
	e.snapshots.byID[s.id] = s
	e.stepThrough([]string{snapshotUploading}, func(step string) {
		if s.status != snapshotDeleted {
			s.status, s.updatedAt = step, e.now()
		}
	}, func() { e.finishSnapshot(s) })
}

// finishSnapshot makes s ready, or failed when a failure was asked for; a
// failed snapshot keeps no files. The caller holds engine.mu.
func (e *engine) finishSnapshot(s *snapshot) {
	if s.status == snapshotDeleted {
		return
	}
	s.status, s.updatedAt = snapshotReady, e.now()
	if s.errText != "" {
		s.status = snapshotFailed
		_ = e.shell.removeTree(snapshotTree(s.id))
	}
}

// listSnapshots serves GET /sandboxes/{id}/snapshots: {"data": [...]},
// oldest first. Snapshots outlive their sandbox: a deleted sandbox's are
// still listed, and a sandbox id that never had machine nor snapshot is 404.
func (e *engine) listSnapshots(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	e.mu.Lock()
	var views []map[string]any
	for _, s := range slices.SortedFunc(maps.Values(e.snapshots.byID), func(a, b *snapshot) int { return a.seq - b.seq }) {
		if s.sandboxID == id {
			views = append(views, s.view())
		}
	}
	known := e.machines[id] != nil || len(views) > 0
	e.mu.Unlock()
	if !known {
		notFound(w, "sandbox", id)
		return
	}
	writeList(w, views, nil)
}

// readySnapshot returns the snapshot snapshotID of sandbox sandboxID when it
// is ready, or the refusal of a restore or fork from it: 404 for an unknown
// one, 409 SNAPSHOT_NOT_READY (retryable, with the time left) for one still
// on its way, 409 CONFLICT for a failed one. The caller holds engine.mu.
func (e *engine) readySnapshot(sandboxID, snapshotID string) (*snapshot, reply) {
	s := e.snapshots.byID[snapshotID]
	switch {
	case s == nil || s.sandboxID != sandboxID:
		return nil, errorReply(http.StatusNotFound, "NOT_FOUND", "snapshot %q of sandbox %q not found", snapshotID, sandboxID)
	case s.status == snapshotFailed:
		return nil, errorReply(http.StatusConflict, "CONFLICT", "snapshot %s failed (%s): nothing can be made from it", s.id, s.errText)
	case s.status != snapshotReady:
		return nil, retryableReply(http.StatusConflict, "SNAPSHOT_NOT_READY",
			fmt.Sprintf("snapshot %s is still %s; nothing was made, retry shortly", s.id, s.status),
			map[string]any{"id": s.id, "status": s.status}, s.readyDue.Sub(e.now()))
	}
	return s, reply{}
}

// restoreSnapshot serves POST /sandboxes/{id}/restore/{snapshot_id} (body
// {}): a NEW sandbox with the snapshot's settings and a copy of its files,
// booting like any new machine, answered 201 under "data" in the native
// routes' naming. The snapshot's own sandbox is not touched, and need not
// exist any more.
func (e *engine) restoreSnapshot(w http.ResponseWriter, r *http.Request) {
	if _, ok := knownFields(w, r, nil); !ok {
		return
	}
	snapshotID := r.PathValue("snapshot_id")
	e.mu.Lock()
	var restored *machine
	s, rp := e.readySnapshot(r.PathValue("id"), snapshotID)
	if s != nil {
		restored = s.source.copySettings()
		restored.name = s.source.name + "-restored"
		restored.snapshotID = s.id
		e.addMachine(restored)
		s.lastUsedAt = e.now()
		rp = dataReply(http.StatusCreated, restored.nativeView())
	}
	e.mu.Unlock()
	e.writeBranch(w, snapshotTree(snapshotID), restored, rp)
}

// writeBranch gives the machine a fork or restore just made (nil when it
// was refused) a copy of the file tree from, then writes rp; a copy that
// fails removes the machine and answers 500.
func (e *engine) writeBranch(w http.ResponseWriter, from string, m *machine, rp reply) {
	if m != nil {
		if err := e.shell.copyTree(from, m.id); err != nil {
			e.mu.Lock()
			e.remove(m)
			e.mu.Unlock()
			rp = errorReply(http.StatusInternalServerError, "INTERNAL", "copying the files of the new machine: %v", err)
		}
	}
	e.write(w, rp)
}

// deleteSnapshot serves DELETE /sandboxes/{id}/snapshots/{snapshot_id},
// answered 204: the snapshot is no longer listed and its files are gone.
// Machines made from it keep theirs.
func (e *engine) deleteSnapshot(w http.ResponseWriter, r *http.Request) {
	id, snapshotID := r.PathValue("id"), r.PathValue("snapshot_id")
	e.mu.Lock()
	s := e.snapshots.byID[snapshotID]
	found := s != nil && s.sandboxID == id
	if found {
		s.status = snapshotDeleted
		delete(e.snapshots.byID, snapshotID)
	}
	e.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("snapshot %q of sandbox %q not found", snapshotID, id))
		return
	}
	_ = e.shell.removeTree(snapshotTree(snapshotID))
	w.WriteHeader(http.StatusNoContent)
}

// FailSnapshots makes the next n snapshots fail with reason.
func (e *engine) FailSnapshots(n int, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.snapshots.failures.add(n, cmp.Or(reason, "snapshot failed"))
}

// FailSnapshots makes the next n snapshots end "failed" after "uploading",
// with reason (a default text when empty) in their "error"; nothing can be
// restored or forked from them.
func (s *Server) FailSnapshots(n int, reason string) {
	s.engine.FailSnapshots(n, reason)
}
