package miosatest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
)

var machineSizes = []string{"xs", "small", "medium", "large", "xl"}

const (
	// defaultPerPage follows the one fixture that shows it; small, so
	// code that reads only the first page fails in tests.
	defaultPerPage = 20
	maxPerPage     = 500
)

// createFields are the keys POST /computers accepts: the wire contract's,
// and the sandbox settings that PATCH /sandboxes/{id} also sets, which a
// newer client may send at creation. Any other key is refused, never
// silently dropped.
var createFields = []string{
	"name", "template_type", "size", "metadata",
	"external_workspace_id", "external_user_id", "external_project_id",
	"tags", "always_on", "timeout_sec", "idle_timeout_sec",
}

// createComputer serves POST /computers: every field optional, template
// "miosa-desktop" and size "small" by default, answered 201 with the bare
// computer while it is still "creating". A template_type that is neither
// built in nor a template of the tenant (by id or alias) is refused with
// 422 TEMPLATE_NOT_FOUND, one that has no image yet with 422
// TEMPLATE_NOT_READY.
func (e *engine) createComputer(w http.ResponseWriter, r *http.Request) {
	fields, ok := knownFields(w, r, createFields)
	if !ok {
		return
	}
	e.createMachine(w, fields, templateDesktop, func(m *machine) reply { return bareReply(http.StatusCreated, m.view()) })
}

// createMachine makes a machine from a create body's fields, template
// defaultTemplate and size "small" unless they say otherwise, and answers
// with answer's reply, or with the refusal of a bad field or template.
func (e *engine) createMachine(w http.ResponseWriter, fields map[string]json.RawMessage, defaultTemplate string, answer func(*machine) reply) {
	m := &machine{}
	if !decodeMachineFields(w, fields, m) {
		return
	}
	m.templateType = cmp.Or(m.templateType, defaultTemplate)
	m.size = cmp.Or(m.size, "small")
	if !slices.Contains(machineSizes, m.size) {
		invalid(w, "size %q is not one of %v", m.size, machineSizes)
		return
	}
	e.mu.Lock()
	rp := e.templateProblem(m.templateType)
	if rp.code == "" {
		e.addMachine(m)
		rp = answer(m)
	}
	e.mu.Unlock()
	e.write(w, rp)
}

// decodeMachineFields reads a create body into m, answering 422 itself and
// reporting false on a value of the wrong type or out of range.
func decodeMachineFields(w http.ResponseWriter, fields map[string]json.RawMessage, m *machine) bool {
	for _, f := range []struct {
		name string
		dst  any
		want string
	}{
		{"name", &m.name, "a string"}, {"template_type", &m.templateType, "a string"}, {"size", &m.size, "a string"},
		{"external_workspace_id", &m.externalWorkspaceID, "a string"},
		{"external_user_id", &m.externalUserID, "a string"},
		{"external_project_id", &m.externalProjectID, "a string"},
		{"metadata", &m.metadata, "an object"}, {"tags", &m.tags, "a list of strings"},
		{"always_on", &m.alwaysOn, "a boolean"},
		{"timeout_sec", &m.timeoutSec, "an integer"}, {"idle_timeout_sec", &m.idleTimeoutSec, "an integer"},
	} {
		if _, ok := field(w, fields, f.name, f.dst, f.want); !ok {
			return false
		}
	}
	if m.timeoutSec < 0 || m.idleTimeoutSec < 0 {
		invalid(w, "timeout_sec and idle_timeout_sec must not be negative")
		return false
	}
	return true
}

// templateProblem returns the error reply for a template_type no machine
// can be made from, or a zero reply; the caller holds engine.mu.
func (e *engine) templateProblem(templateType string) reply {
	if templateType == templateDesktop || templateType == templateSandbox {
		return reply{}
	}
	t := e.findTemplate(templateType)
	switch {
	case t == nil:
		return errorReply(http.StatusUnprocessableEntity, "TEMPLATE_NOT_FOUND",
			"template_type %q is not %s, %s or a template of this tenant", templateType, templateDesktop, templateSandbox)
	case t.status != templateReady:
		return errorReply(http.StatusUnprocessableEntity, "TEMPLATE_NOT_READY",
			"template %q has no image yet: build it first", templateType)
	}
	return reply{}
}

// listComputers serves GET /computers with the status filter and
// page/per_page pagination, oldest first, always with "meta".
func (e *engine) listComputers(w http.ResponseWriter, r *http.Request) {
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

// reply is an answer decided under engine.mu and written after it is
// released, so a slow client never holds up the engine.
type reply struct {
	status int
	object any    // the answer's object, sent bare or as {"data": object}
	bare   bool   // object goes bare, as the official fixtures show for its endpoint
	raw    any    // sent as it is, when object is nil
	code   string // an error answer, when set
	msg    string
}

// dataReply answers {"data": v}.
func dataReply(status int, v any) reply { return reply{status: status, object: v} }

// bareReply answers v at the top level (or under "data" with
// engineConfig.DataEnvelope).
func bareReply(status int, v any) reply { return reply{status: status, object: v, bare: true} }

func errorReply(status int, code, format string, args ...any) reply {
	return reply{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func (e *engine) write(w http.ResponseWriter, rp reply) {
	switch {
	case rp.code != "":
		writeError(w, rp.status, rp.code, rp.msg)
	case rp.status == http.StatusNoContent:
		w.WriteHeader(rp.status)
	case rp.object != nil && rp.bare && !e.cfg.DataEnvelope:
		writeJSON(w, rp.status, rp.object)
	case rp.object != nil:
		writeData(w, rp.status, rp.object)
	default:
		writeJSON(w, rp.status, rp.raw)
	}
}

// withMachine runs fn on the machine named by the path's {id} with engine.mu
// held and writes its reply, or answers 404.
func (e *engine) withMachine(w http.ResponseWriter, r *http.Request, fn func(m *machine) reply) {
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
	e.write(w, rp)
}

// getComputer serves GET /computers/{id}, answering the computer bare.
func (e *engine) getComputer(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply { return bareReply(http.StatusOK, m.view()) })
}

// deleteComputer serves DELETE /computers/{id}, answering {"ok": true}, and
// removes the machine's files from this host. A
// machine that is not stopped is refused with 409 unless force=true, which
// stops it first, as the API's documentation says; with
// engineConfig.LenientDelete a plain delete removes it whatever its state.
func (e *engine) deleteComputer(w http.ResponseWriter, r *http.Request) {
	force := r.URL.Query().Get("force") == "true"
	e.withMachine(w, r, func(m *machine) reply {
		if !e.cfg.LenientDelete && !force && m.status != statusStopped && m.status != statusError {
			return errorReply(http.StatusConflict, "CONFLICT",
				"computer %s is %s: stop it first, or delete with force=true "+
					"(miosatest refuses a plain delete of a machine that is not stopped, as the API's documentation says; "+
					"miosatest.WithLenientDelete() allows it)", m.id, m.status)
		}
		e.remove(m)
		return reply{status: http.StatusOK, raw: map[string]bool{"ok": true}}
	})
}

// remove deletes m, stopping it first, and its files; the caller holds
// engine.mu.
func (e *engine) remove(m *machine) {
	e.stop(m)
	delete(e.machines, m.id)
	// Its files, processes (ended by the stop) and screen go with it; what
	// cannot be removed now, Cleanup removes.
	_ = e.shell.removeTree(m.id)
	e.procs.forget(m.id)
	delete(e.desktops, m.id)
}

// startComputer serves POST /computers/{id}/start: a stopped (or failed)
// machine boots again through "starting"; one already up or booting is left
// as it is.
func (e *engine) startComputer(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply {
		if m.status == statusStopped || m.status == statusError {
			e.boot(m, statusStarting)
		}
		return dataReply(http.StatusOK, m.view())
	})
}

// stopComputer serves POST /computers/{id}/stop.
func (e *engine) stopComputer(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply {
		e.stop(m)
		return dataReply(http.StatusOK, m.view())
	})
}

// restartComputer serves POST /computers/{id}/restart: whatever its state,
// the machine boots again through "starting".
func (e *engine) restartComputer(w http.ResponseWriter, r *http.Request) {
	e.withMachine(w, r, func(m *machine) reply {
		e.stop(m)
		e.boot(m, statusStarting)
		return dataReply(http.StatusOK, m.view())
	})
}
