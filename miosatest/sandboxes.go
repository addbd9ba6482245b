package miosatest

import (
	"cmp"
	"net/http"
	"regexp"
	"time"
)

// forkFields are the keys POST /sandboxes/{id}/fork accepts: the seed's,
// and timeout_sec and template_id, which an official fixture sends.
var forkFields = []string{"name", "snapshot_id", "external_user_id", "timeout_sec", "template_id"}

// forkSandbox serves POST /sandboxes/{id}/fork: a new sandbox with the
// source's settings and a copy of its files (of a ready snapshot's files,
// with snapshot_id), booting like any new machine, answered 200 with the
// bare sandbox as the official fixture shows, under both namings (status
// and template_type, state and template_id). timeout_sec replaces the
// timeout; template_id is checked as create checks template_type. A key
// other than forkFields is refused with 422.
func (e *engine) forkSandbox(w http.ResponseWriter, r *http.Request) {
	fields, ok := knownFields(w, r, forkFields)
	if !ok {
		return
	}
	var (
		name, snapshotID, externalUserID, templateID string
		timeoutSec                                   int
	)
	for _, f := range []struct {
		name string
		dst  any
		want string
	}{
		{"name", &name, "a string"}, {"snapshot_id", &snapshotID, "a string"},
		{"external_user_id", &externalUserID, "a string"}, {"template_id", &templateID, "a string"},
		{"timeout_sec", &timeoutSec, "an integer"},
	} {
		if _, ok := field(w, fields, f.name, f.dst, f.want); !ok {
			return
		}
	}
	if timeoutSec < 0 {
		invalid(w, "timeout_sec must not be negative")
		return
	}
	id := r.PathValue("id")
	e.mu.Lock()
	src, rp := e.machines[id], reply{}
	var (
		fork *machine
		from = id // the file tree the fork starts with
	)
	switch {
	case src == nil:
		rp = errorReply(http.StatusNotFound, "NOT_FOUND", "sandbox %q not found", id)
	case snapshotID != "":
		var s *snapshot
		if s, rp = e.readySnapshot(id, snapshotID); s != nil {
			from = snapshotTree(s.id)
		}
	}
	if rp.status == 0 {
		rp = e.templateProblem(cmp.Or(templateID, src.templateType))
	}
	if rp.status == 0 {
		fork = src.copySettings()
		fork.name = cmp.Or(name, src.name+"-fork")
		fork.templateType = cmp.Or(templateID, src.templateType)
		fork.timeoutSec = cmp.Or(timeoutSec, src.timeoutSec)
		fork.externalUserID = cmp.Or(externalUserID, src.externalUserID)
		fork.forkedFrom, fork.snapshotID = src.id, snapshotID
		e.addMachine(fork)
		rp = bareReply(http.StatusOK, fork.dualView())
	}
	e.mu.Unlock()
	e.writeBranch(w, from, fork, rp)
}

// updatableFields are the only keys PATCH /sandboxes/{id} accepts.
var updatableFields = []string{"name", "slug", "tags", "metadata", "always_on", "timeout_sec", "idle_timeout_sec"}

var validSlug = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

// updateSandbox serves PATCH /sandboxes/{id}: only the updatable keys, each
// type-checked; any other key is refused with 422 and nothing changes.
func (e *engine) updateSandbox(w http.ResponseWriter, r *http.Request) {
	fields, ok := knownFields(w, r, updatableFields)
	if !ok {
		return
	}
	var (
		name, slug          string
		tags                []string
		metadata            map[string]any
		alwaysOn            bool
		timeoutSec, idleSec int
	)
	// Each updatable key: where it decodes, what it must be, and how it
	// changes the machine when it is sent.
	updates := []struct {
		name string
		dst  any
		want string
		set  func(*machine)
	}{
		{"name", &name, "a string", func(m *machine) { m.name = name }},
		{"slug", &slug, "a string", func(m *machine) { m.slug = slug }},
		{"tags", &tags, "a list of strings", func(m *machine) { m.tags = tags }},
		{"metadata", &metadata, "an object", func(m *machine) { m.metadata = metadata }},
		{"always_on", &alwaysOn, "a boolean", func(m *machine) { m.alwaysOn = alwaysOn }},
		{"timeout_sec", &timeoutSec, "an integer", func(m *machine) { m.timeoutSec = timeoutSec }},
		{"idle_timeout_sec", &idleSec, "an integer", func(m *machine) { m.idleTimeoutSec = idleSec }},
	}
	sent := map[string]bool{}
	for _, u := range updates {
		present, ok := field(w, fields, u.name, u.dst, u.want)
		if !ok {
			return
		}
		sent[u.name] = present
	}
	switch {
	case sent["name"] && name == "":
		invalid(w, "name must not be empty")
		return
	case sent["slug"] && !validSlug.MatchString(slug):
		invalid(w, "slug %q must be lower-case letters, digits and inner dashes", slug)
		return
	case timeoutSec < 0 || idleSec < 0:
		invalid(w, "timeout_sec and idle_timeout_sec must not be negative")
		return
	}
	e.withMachine(w, r, func(m *machine) reply {
		for _, u := range updates {
			if sent[u.name] {
				u.set(m)
			}
		}
		m.updatedAt = e.now()
		return dataReply(http.StatusOK, m.view())
	})
}

const maxPreviewExpiry = 7 * 24 * time.Hour

// previewToken serves POST /sandboxes/{id}/preview-token: expires_in
// seconds (default 3600, at most 7 days) and scope "read" (default) or
// "interact", answered 200 with the bare token, as every official fixture
// shows.
func (e *engine) previewToken(w http.ResponseWriter, r *http.Request) {
	fields, ok := decodeFields(w, r)
	if !ok {
		return
	}
	expiresIn, scope := 3600, "read"
	if _, ok := field(w, fields, "expires_in", &expiresIn, "an integer number of seconds"); !ok {
		return
	}
	if _, ok := field(w, fields, "scope", &scope, "a string"); !ok {
		return
	}
	switch {
	case expiresIn <= 0 || time.Duration(expiresIn)*time.Second > maxPreviewExpiry:
		invalid(w, "expires_in must be between 1 and %d seconds", int(maxPreviewExpiry/time.Second))
		return
	case scope != "read" && scope != "interact":
		invalid(w, `scope %q must be "read" or "interact"`, scope)
		return
	}
	e.withMachine(w, r, func(m *machine) reply {
		token := newID("pvt_")
		return bareReply(http.StatusOK, map[string]any{
			"token":      token,
			"url":        "https://" + m.id + ".preview.miosa.invalid/?token=" + token,
			"expires_at": timeString(e.now().Add(time.Duration(expiresIn) * time.Second)),
			"scope":      scope,
		})
	})
}

// readinessView is the readiness object: ready, with status "ready", once
// the machine runs; otherwise its lifecycle status.
func (m *machine) readinessView() map[string]any {
	v := map[string]any{"ready": m.status == statusRunning, "status": m.status}
	if m.status == statusRunning {
		v["status"] = "ready"
		v["ready_at"] = timeString(m.readyAt)
	}
	return v
}

// readiness serves GET /sandboxes/{id}/readiness.
func (e *engine) readiness(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply { return dataReply(http.StatusOK, m.readinessView()) })
}

// readyEvent is the data of the stream's "ready" event.
func readyEvent(readyAt time.Time) map[string]string {
	return map[string]string{"ready_at": timeString(readyAt)}
}
