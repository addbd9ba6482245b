package miosatest

import (
	"maps"
	"net/http"
	"slices"
)

// The native sandbox routes: /sandboxes and /sandboxes/{id}/..., which the
// newer official SDKs use for the same machines as /computers. Their
// sandbox object says "state" where computers say "status" and
// "template_id" where they say "template_type", and comes under "data".

// nativeState is a machine status as the native routes name it: a machine
// not booted yet is "provisioning" there (an official fixture), the rest
// alike.
func nativeState(status string) string {
	if status == statusCreating {
		return "provisioning"
	}
	return status
}

// dualView is m under both namings, as the fork route answers it, so that
// clients of either lane read it right.
func (m *machine) dualView() machineView {
	v := m.view()
	v.State, v.TemplateID = nativeState(m.status), m.templateType
	return v
}

// nativeView is m as the native routes send it.
func (m *machine) nativeView() machineView {
	v := m.dualView()
	v.Status, v.TemplateType = "", ""
	return v
}

// nativeCreateFields are the keys POST /sandboxes accepts: those of
// POST /computers, with template_id for template_type.
var nativeCreateFields = slices.Concat(slices.DeleteFunc(slices.Clone(createFields), func(k string) bool {
	return k == "template_type"
}), []string{"template_id"})

// createNative serves POST /sandboxes: a machine made as POST /computers
// makes one, template_id defaulting to "miosa-sandbox", answered 201 under
// "data" with state "provisioning".
func (e *engine) createNative(w http.ResponseWriter, r *http.Request) {
	fields, ok := knownFields(w, r, nativeCreateFields)
	if !ok {
		return
	}
	if templateID, ok := fields["template_id"]; ok {
		fields["template_type"] = templateID
		delete(fields, "template_id")
	}
	e.createMachine(w, fields, templateSandbox, func(m *machine) reply { return dataReply(http.StatusCreated, m.nativeView()) })
}

// getNative serves GET /sandboxes/{id}.
func (e *engine) getNative(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply { return dataReply(http.StatusOK, m.nativeView()) })
}

// listNative serves GET /sandboxes: every machine that is not a desktop,
// oldest first, under "data", filtered by the external_* attributions the
// query names.
func (e *engine) listNative(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	e.mu.Lock()
	var views []machineView
	for _, m := range slices.SortedFunc(maps.Values(e.machines), func(a, b *machine) int { return a.seq - b.seq }) {
		if m.templateType == templateDesktop ||
			!matches(q.Get("external_workspace_id"), m.externalWorkspaceID) ||
			!matches(q.Get("external_user_id"), m.externalUserID) ||
			!matches(q.Get("external_project_id"), m.externalProjectID) {
			continue
		}
		views = append(views, m.nativeView())
	}
	e.mu.Unlock()
	writeList(w, views, nil)
}

// matches reports whether value passes a filter: an empty filter passes
// everything.
func matches(filter, value string) bool { return filter == "" || filter == value }

// deleteNative serves DELETE /sandboxes/{id}, answered 204: the machine and
// its files are removed whatever its state (the native lane's delete, as the
// official fixture shows it, needs no force).
func (e *engine) deleteNative(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply {
		e.remove(m)
		return reply{status: http.StatusNoContent}
	})
}

// stopNative serves POST /sandboxes/{id}/stop.
func (e *engine) stopNative(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply {
		e.stop(m)
		return dataReply(http.StatusOK, m.nativeView())
	})
}

// extendSandbox serves POST /sandboxes/{id}/extend {"timeout_sec": N}: the
// timeout becomes N seconds from now, as the official SDKs describe it
// ("replaces the timeout and resets its deadline"); {} keeps the timeout
// and only restarts its count. The fake stops no machine at its timeout.
func (e *engine) extendSandbox(w http.ResponseWriter, r *http.Request) {
	fields, ok := knownFields(w, r, []string{"timeout_sec"})
	if !ok {
		return
	}
	var timeoutSec int
	sent, ok := field(w, fields, "timeout_sec", &timeoutSec, "an integer number of seconds")
	if !ok {
		return
	}
	if sent && timeoutSec <= 0 {
		invalid(w, "timeout_sec must be a positive number of seconds")
		return
	}
	e.withMachine(w, r, func(m *machine) reply {
		if sent {
			m.timeoutSec = timeoutSec
		}
		m.updatedAt = e.now()
		return dataReply(http.StatusOK, m.nativeView())
	})
}

// pauseSandbox serves POST /sandboxes/{id}/pause: a running or booting
// machine is "paused" at once (and refuses exec and files with 409 until it
// is resumed); a paused one stays so. A stopped or failed one is refused
// with 409.
func (e *engine) pauseSandbox(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply {
		switch m.status {
		case statusPaused:
		case statusRunning, statusCreating, statusStarting:
			m.gen++ // a boot in progress does not wake it
			e.setStatus(m, statusPaused)
		default:
			return errorReply(http.StatusConflict, "CONFLICT", "sandbox %s is %s: only a running sandbox can be paused", m.id, m.status)
		}
		return dataReply(http.StatusOK, m.nativeView())
	})
}

// resumeSandbox serves POST /sandboxes/{id}/resume: a paused machine boots
// again through "starting"; one running or booting is left as it is; a
// stopped or failed one is refused with 409.
func (e *engine) resumeSandbox(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply {
		switch m.status {
		case statusPaused:
			e.boot(m, statusStarting)
		case statusRunning, statusCreating, statusStarting:
		default:
			return errorReply(http.StatusConflict, "CONFLICT", "sandbox %s is %s, not paused: start it instead", m.id, m.status)
		}
		return dataReply(http.StatusOK, m.nativeView())
	})
}

// setTags serves PATCH /sandboxes/{id}/tags {"tags": [...]}: the list
// replaces the sandbox's tags.
func (e *engine) setTags(w http.ResponseWriter, r *http.Request) {
	fields, ok := knownFields(w, r, []string{"tags"})
	if !ok {
		return
	}
	var tags []string
	present, ok := field(w, fields, "tags", &tags, "a list of strings")
	if !ok {
		return
	}
	if !present {
		invalid(w, "tags is required")
		return
	}
	e.withMachine(w, r, func(m *machine) reply {
		m.tags, m.updatedAt = tags, e.now()
		return dataReply(http.StatusOK, m.nativeView())
	})
}
