package fakeapi

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
)

var machineSizes = []string{"xs", "small", "medium", "large", "xl"}

const (
	defaultPerPage = 100
	maxPerPage     = 500
)

// createComputer serves POST /computers: every field optional, template
// "miosa-desktop" and size "small" by default, answered 201 while the
// machine is still "creating".
func (e *Engine) createComputer(w http.ResponseWriter, r *http.Request) {
	fields, ok := decodeFields(w, r)
	if !ok {
		return
	}
	m := &machine{}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"name", &m.name}, {"template_type", &m.templateType}, {"size", &m.size},
		{"external_workspace_id", &m.externalWorkspaceID},
		{"external_user_id", &m.externalUserID},
		{"external_project_id", &m.externalProjectID},
	} {
		if _, ok := field(w, fields, f.name, f.dst, "a string"); !ok {
			return
		}
	}
	if _, ok := field(w, fields, "metadata", &m.metadata, "an object"); !ok {
		return
	}
	m.templateType = cmp.Or(m.templateType, templateDesktop)
	m.size = cmp.Or(m.size, "small")
	if !slices.Contains(machineSizes, m.size) {
		invalid(w, "size %q is not one of %v", m.size, machineSizes)
		return
	}
	e.mu.Lock()
	e.addMachine(m)
	v := m.view()
	e.mu.Unlock()
	writeData(w, http.StatusCreated, v)
}

// listComputers serves GET /computers with the status filter and
// page/per_page pagination, oldest first, always with "meta".
func (e *Engine) listComputers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, ok := positiveQuery(w, q.Get("page"), "page", 1)
	if !ok {
		return
	}
	perPage, ok := positiveQuery(w, q.Get("per_page"), "per_page", defaultPerPage)
	if !ok {
		return
	}
	perPage = min(perPage, maxPerPage)
	status := q.Get("status")

	e.mu.Lock()
	all := make([]*machine, 0, len(e.machines))
	for _, m := range e.machines {
		if status == "" || m.status == status {
			all = append(all, m)
		}
	}
	slices.SortFunc(all, func(a, b *machine) int { return a.seq - b.seq })
	var views []machineView
	if start := (page - 1) * perPage; start < len(all) {
		for _, m := range all[start:min(start+perPage, len(all))] {
			views = append(views, m.view())
		}
	}
	e.mu.Unlock()
	writeList(w, views, &listMeta{Total: len(all), Page: page, PerPage: perPage})
}

func positiveQuery(w http.ResponseWriter, raw, name string, def int) (int, bool) {
	if raw == "" {
		return def, true
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		writeError(w, http.StatusBadRequest, "INVALID", fmt.Sprintf("%s must be a positive integer", name))
		return 0, false
	}
	return n, true
}

// reply is an answer decided under Engine.mu and written after it is
// released, so a slow client never holds up the engine.
type reply struct {
	status int
	data   any    // sent as {"data": data}
	raw    any    // sent as it is, when data is nil
	code   string // an error answer, when set
	msg    string
}

func dataReply(status int, v any) reply { return reply{status: status, data: v} }

func errorReply(status int, code, format string, args ...any) reply {
	return reply{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func (rp reply) write(w http.ResponseWriter) {
	switch {
	case rp.code != "":
		writeError(w, rp.status, rp.code, rp.msg)
	case rp.data != nil:
		writeData(w, rp.status, rp.data)
	default:
		writeJSON(w, rp.status, rp.raw)
	}
}

// withMachine runs fn on the machine named by the path's {id} with Engine.mu
// held and writes its reply, or answers 404.
func (e *Engine) withMachine(w http.ResponseWriter, r *http.Request, fn func(m *machine) reply) {
	id := r.PathValue("id")
	e.mu.Lock()
	m := e.machines[id]
	var rp reply
	if m == nil {
		rp = errorReply(http.StatusNotFound, "NOT_FOUND", "computer %q not found", id)
	} else {
		rp = fn(m)
	}
	e.mu.Unlock()
	rp.write(w)
}

// getComputer serves GET /computers/{id}.
func (e *Engine) getComputer(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply { return dataReply(http.StatusOK, m.view()) })
}

// deleteComputer serves DELETE /computers/{id}, answering {"ok": true}.
// With StrictDelete, a machine that is not stopped is refused with 409
// unless force=true, which stops it first.
func (e *Engine) deleteComputer(w http.ResponseWriter, r *http.Request) {
	force := r.URL.Query().Get("force") == "true"
	e.withMachine(w, r, func(m *machine) reply {
		if e.cfg.StrictDelete && !force && m.status != statusStopped && m.status != statusError {
			return errorReply(http.StatusConflict, "CONFLICT",
				"computer %s is %s: stop it first, or delete with force=true", m.id, m.status)
		}
		e.stop(m)
		delete(e.machines, m.id)
		return reply{status: http.StatusOK, raw: map[string]bool{"ok": true}}
	})
}

// startComputer serves POST /computers/{id}/start: a stopped (or failed)
// machine boots again through "starting"; one already up or booting is left
// as it is.
func (e *Engine) startComputer(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply {
		if m.status == statusStopped || m.status == statusError {
			e.boot(m, statusStarting)
		}
		return dataReply(http.StatusOK, m.view())
	})
}

// stopComputer serves POST /computers/{id}/stop.
func (e *Engine) stopComputer(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply {
		e.stop(m)
		return dataReply(http.StatusOK, m.view())
	})
}

// restartComputer serves POST /computers/{id}/restart: whatever its state,
// the machine boots again through "starting".
func (e *Engine) restartComputer(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply {
		e.stop(m)
		e.boot(m, statusStarting)
		return dataReply(http.StatusOK, m.view())
	})
}
