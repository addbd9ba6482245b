package miosatest

import (
	"cmp"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"time"
)

// forkFields are the keys POST /sandboxes/{id}/fork accepts.
var forkFields = []string{"name", "snapshot_id", "external_user_id"}

// forkSandbox serves POST /sandboxes/{id}/fork: a new sandbox with the
// source's template, size, metadata and tags, booting like any new machine,
// answered 200 with the bare sandbox as the official fixture shows. A key
// other than forkFields is refused with 422.
func (e *engine) forkSandbox(w http.ResponseWriter, r *http.Request) {
	fields, ok := knownFields(w, r, forkFields)
	if !ok {
		return
	}
	var name, snapshotID, externalUserID string
	for _, f := range []struct {
		name string
		dst  *string
	}{{"name", &name}, {"snapshot_id", &snapshotID}, {"external_user_id", &externalUserID}} {
		if _, ok := field(w, fields, f.name, f.dst, "a string"); !ok {
			return
		}
	}
	e.withMachine(w, r, func(src *machine) reply {
		fork := &machine{
			name:                cmp.Or(name, src.name+"-fork"),
			templateType:        src.templateType,
			size:                src.size,
			metadata:            cloneMap(src.metadata),
			tags:                slices.Clone(src.tags),
			externalWorkspaceID: src.externalWorkspaceID,
			externalUserID:      cmp.Or(externalUserID, src.externalUserID),
			externalProjectID:   src.externalProjectID,
			forkedFrom:          src.id,
			snapshotID:          snapshotID,
		}
		e.addMachine(fork)
		return bareReply(http.StatusOK, fork.view())
	})
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
func readyEvent(readyAt time.Time) []byte {
	b, _ := json.Marshal(map[string]string{"ready_at": timeString(readyAt)})
	return b
}
