package miosatest

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"
)

// Template statuses: "pending" until a build succeeds, then "ready";
// "failed" when its builds have only failed.
const (
	templatePending = "pending"
	templateReady   = "ready"
	templateFailed  = "failed"
)

// Build statuses, in the order a build moves through them. Success is
// "ready", as the official SDKs' build types name it ("succeeded" is seen in
// no fixture); newer servers (engineConfig.BuildStates) add two steps and report
// under "state".
const (
	buildQueued       = "queued"
	buildBuilding     = "building"
	buildCertifying   = "certifying"
	buildSnapshotting = "snapshotting"
	buildReady        = "ready"
	buildFailed       = "failed"
)

// buildFailedCode is the error_code of a failed build under
// engineConfig.BuildStates.
const buildFailedCode = "BUILD_FAILED"

// template is a sandbox template. Fields are guarded by engine.mu.
type template struct {
	seq         int
	id          string
	name        string
	description string
	buildSpec   map[string]any
	status      string
	imageRef    string
	aliases     []string
	metadata    map[string]any
	createdAt   time.Time
	updatedAt   time.Time
}

// view is the template as the API sends it; newer servers (states) name its
// status "state".
func (t *template) view(withAliases, states bool) map[string]any {
	v := map[string]any{
		"id": t.id, "tenant_id": fakeTenant, "name": t.name, "description": t.description,
		"build_spec": cloneMap(t.buildSpec), stateKey(states): t.status, "image_ref": t.imageRef,
		"metadata":   cloneMap(t.metadata),
		"created_at": timeString(t.createdAt), "updated_at": timeString(t.updatedAt),
	}
	if t.metadata == nil {
		v["metadata"] = map[string]any{}
	}
	if withAliases {
		v["aliases"] = slices.Clone(t.aliases)
	}
	return v
}

// build is one build of a template's image. Fields are guarded by engine.mu.
type build struct {
	seq        int
	id         string
	templateID string
	status     string
	errText    string
	createdAt  time.Time
	startedAt  time.Time
	finishedAt time.Time
}

// view is the build as the API sends it: with states, under the newer
// servers' field names.
func (b *build) view(states bool) map[string]any {
	v := map[string]any{
		"id": b.id, "template_id": b.templateID, "status": b.status,
		"log_url": "https://logs.miosa.invalid/builds/" + b.id, "error": b.errText,
		"created_at": timeString(b.createdAt), "started_at": nullableTime(b.startedAt),
		"finished_at": nullableTime(b.finishedAt),
	}
	if states {
		delete(v, "template_id")
		delete(v, "status")
		delete(v, "error")
		v["sandbox_template_id"], v["state"] = b.templateID, b.status
		v["error_code"], v["error_message"] = nil, nil
		if b.status == buildFailed {
			v["error_code"], v["error_message"] = buildFailedCode, b.errText
		}
	}
	return v
}

func stateKey(states bool) string {
	if states {
		return "state"
	}
	return "status"
}

// findTemplate returns the template with this id or alias; the caller holds
// engine.mu.
func (e *engine) findTemplate(idOrAlias string) *template {
	if t := e.templates[idOrAlias]; t != nil {
		return t
	}
	for _, t := range e.templates {
		if slices.Contains(t.aliases, idOrAlias) {
			return t
		}
	}
	return nil
}

// listTemplates serves GET /sandbox-templates, oldest first; aliases are
// included only with include_aliases=true.
func (e *engine) listTemplates(w http.ResponseWriter, r *http.Request) {
	withAliases := r.URL.Query().Get("include_aliases") == "true"
	e.mu.Lock()
	all := slices.SortedFunc(maps.Values(e.templates), func(a, b *template) int { return a.seq - b.seq })
	views := make([]map[string]any, 0, len(all))
	for _, t := range all {
		views = append(views, t.view(withAliases, e.cfg.BuildStates))
	}
	e.mu.Unlock()
	writeList(w, views, nil)
}

// getTemplate serves GET /sandbox-templates/{id}; the id may also be one of
// the template's aliases.
func (e *engine) getTemplate(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	e.mu.Lock()
	t := e.findTemplate(id)
	var v map[string]any
	if t != nil {
		v = t.view(true, e.cfg.BuildStates)
	}
	e.mu.Unlock()
	if t == nil {
		notFound(w, "template", id)
		return
	}
	writeData(w, http.StatusOK, v)
}

// createTemplate serves POST /sandbox-templates: name and a valid
// build_spec are required. The template's alias is its name made a slug.
func (e *engine) createTemplate(w http.ResponseWriter, r *http.Request) {
	fields, ok := decodeFields(w, r)
	if !ok {
		return
	}
	t := &template{status: templatePending}
	for _, f := range []struct {
		name string
		dst  any
		want string
	}{
		{"name", &t.name, "a string"}, {"description", &t.description, "a string"},
		{"build_spec", &t.buildSpec, "an object"}, {"metadata", &t.metadata, "an object"},
	} {
		if _, ok := field(w, fields, f.name, f.dst, f.want); !ok {
			return
		}
	}
	switch {
	case t.name == "":
		invalid(w, "name is required")
		return
	case t.buildSpec == nil:
		invalid(w, "build_spec is required")
		return
	}
	if problems := checkBuildSpec(t.buildSpec); len(problems) > 0 {
		writeInvalidSpec(w, problems)
		return
	}
	e.mu.Lock()
	e.seq++
	now := e.now()
	t.seq, t.id = e.seq, newID("tpl_")
	t.createdAt, t.updatedAt = now, now
	t.aliases = []string{slugify(t.name)}
	if other := e.findTemplate(t.aliases[0]); other != nil {
		t.aliases = []string{t.aliases[0] + "-" + t.id[len(t.id)-6:]}
	}
	e.templates[t.id] = t
	v := t.view(true, e.cfg.BuildStates)
	e.mu.Unlock()
	writeData(w, http.StatusCreated, v)
}

// listBuilds serves GET /sandbox-templates/{id}/builds, oldest first.
func (e *engine) listBuilds(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	e.mu.Lock()
	t := e.findTemplate(id)
	var views []map[string]any
	if t != nil {
		all := slices.SortedFunc(maps.Values(e.builds), func(a, b *build) int { return a.seq - b.seq })
		for _, b := range all {
			if b.templateID == t.id {
				views = append(views, b.view(e.cfg.BuildStates))
			}
		}
	}
	e.mu.Unlock()
	if t == nil {
		notFound(w, "template", id)
		return
	}
	writeList(w, views, nil)
}

// createBuild serves POST /sandbox-templates/{id}/builds. The body may carry
// build_spec overrides, merged over the template's spec and validated. The
// build moves queued → building → ready (or failed, when a failure was
// asked for), one BuildStepDelay per step; with engineConfig.BuildStates, queued
// → building → certifying → snapshotting → ready (or failed).
func (e *engine) createBuild(w http.ResponseWriter, r *http.Request) {
	fields, ok := decodeFields(w, r)
	if !ok {
		return
	}
	var overrides map[string]any
	if _, ok := field(w, fields, "build_spec", &overrides, "an object"); !ok {
		return
	}
	id := r.PathValue("id")
	e.mu.Lock()
	t := e.findTemplate(id)
	if t == nil {
		e.mu.Unlock()
		notFound(w, "template", id)
		return
	}
	spec := cloneMap(t.buildSpec)
	maps.Copy(spec, overrides)
	if problems := checkBuildSpec(spec); len(problems) > 0 {
		e.mu.Unlock()
		writeInvalidSpec(w, problems)
		return
	}
	e.seq++
	b := &build{seq: e.seq, id: newID("bld_"), templateID: t.id, status: buildQueued, createdAt: e.now()}
	if reason, ok := e.failures.next(); ok {
		b.errText = reason
	}
	e.builds[b.id] = b
	e.advanceBuild(t, b, e.buildSteps())
	v := b.view(e.cfg.BuildStates)
	e.mu.Unlock()
	writeData(w, http.StatusCreated, v)
}

// buildSteps are the states a build passes through after "queued".
func (e *engine) buildSteps() []string {
	if e.cfg.BuildStates {
		return []string{buildBuilding, buildCertifying, buildSnapshotting}
	}
	return []string{buildBuilding}
}

// advanceBuild moves b through steps, one BuildStepDelay each, then
// finishes it; the caller holds engine.mu.
func (e *engine) advanceBuild(t *template, b *build, steps []string) {
	e.stepThrough(steps, func(step string) {
		if b.startedAt.IsZero() {
			b.startedAt = e.now()
		}
		b.status = step
	}, func() { e.finishBuild(t, b) })
}

// finishBuild ends b and updates its template; the caller holds engine.mu.
func (e *engine) finishBuild(t *template, b *build) {
	b.finishedAt = e.now()
	t.updatedAt = b.finishedAt
	if b.errText != "" {
		b.status = buildFailed
		if t.status != templateReady {
			t.status = templateFailed
		}
		return
	}
	b.status = buildReady
	t.status = templateReady
	t.imageRef = "registry.miosa.invalid/templates/" + t.id + ":" + b.id
}

// FailBuilds makes the next n builds fail with reason as their error text.
func (e *engine) FailBuilds(n int, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failures.add(n, cmp.Or(reason, "build failed"))
}

// validateSpec serves POST /sandbox-templates/validate with body
// {"build_spec": {...}}, answering bare: 200 {"valid": true, "errors": [], "build_spec":
// normalized} for a good spec; for a bad one 200 {"valid": false, "errors":
// [...]}, or 422 with the same fields when StrictValidation is set.
func (e *engine) validateSpec(w http.ResponseWriter, r *http.Request) {
	fields, ok := decodeFields(w, r)
	if !ok {
		return
	}
	var spec map[string]any
	present, ok := field(w, fields, "build_spec", &spec, "an object")
	if !ok {
		return
	}
	if !present {
		invalid(w, "build_spec is required")
		return
	}
	problems := checkBuildSpec(spec)
	if len(problems) == 0 {
		e.write(w, bareReply(http.StatusOK, map[string]any{"valid": true, "errors": []string{}, "build_spec": normalizeSpec(spec)}))
		return
	}
	if e.cfg.StrictValidation {
		writeInvalidSpec(w, problems)
		return
	}
	e.write(w, bareReply(http.StatusOK, map[string]any{"valid": false, "errors": problems}))
}

// writeInvalidSpec answers 422 with both the error envelope and the list of
// problems, so a client can read either.
func writeInvalidSpec(w http.ResponseWriter, problems []string) {
	message := "invalid build_spec: " + problems[0]
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"error":   map[string]string{"code": "INVALID", "message": message},
		"message": message,
		"valid":   false,
		"errors":  problems,
	})
}

// Runtimes a build spec may name.
var runtimes = []string{"base", "go", "node", "python"}

// checkBuildSpec returns what is wrong with spec, following the schema that
// buildSpecSchema serves.
func checkBuildSpec(spec map[string]any) []string {
	var problems []string
	runtime, ok := spec["runtime"].(string)
	switch {
	case spec["runtime"] == nil:
		problems = append(problems, "runtime is required")
	case !ok:
		problems = append(problems, "runtime must be a string")
	case !slices.Contains(runtimes, runtime):
		problems = append(problems, fmt.Sprintf("runtime %q is not one of %v", runtime, runtimes))
	}
	if v, found := spec["version"]; found {
		if _, ok := v.(string); !ok {
			problems = append(problems, "version must be a string")
		}
	}
	for _, key := range []string{"packages", "setup"} {
		if v, found := spec[key]; found && !isStringList(v) {
			problems = append(problems, key+" must be a list of strings")
		}
	}
	if v, found := spec["env"]; found {
		env, ok := v.(map[string]any)
		if !ok {
			problems = append(problems, "env must be an object of strings")
		}
		for _, k := range slices.Sorted(maps.Keys(env)) {
			if _, ok := env[k].(string); !ok {
				problems = append(problems, fmt.Sprintf("env.%s must be a string", k))
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec)) {
		if _, known := buildSpecProperties[k]; !known {
			problems = append(problems, fmt.Sprintf("unknown field %q", k))
		}
	}
	return problems
}

func isStringList(v any) bool {
	items, ok := v.([]any)
	if !ok {
		return false
	}
	for _, item := range items {
		if _, ok := item.(string); !ok {
			return false
		}
	}
	return true
}

// normalizeSpec returns spec with the defaults the server would apply.
func normalizeSpec(spec map[string]any) map[string]any {
	out := cloneMap(spec)
	for key, def := range map[string]any{"packages": []any{}, "setup": []any{}, "env": map[string]any{}} {
		if _, ok := out[key]; !ok {
			out[key] = def
		}
	}
	if _, ok := out["version"]; !ok {
		out["version"] = "latest"
	}
	return out
}

var buildSpecProperties = map[string]any{
	"runtime":  map[string]any{"type": "string", "enum": runtimes, "description": "Language runtime of the image."},
	"version":  map[string]any{"type": "string", "description": "Runtime version, e.g. \"20\"; default \"latest\"."},
	"packages": map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "System packages to install."},
	"setup":    map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "Shell commands run once at build time."},
	"env":      map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "description": "Environment of every sandbox made from the image."},
}

// buildSpecSchema serves GET /sandbox-templates/build-spec: a bare JSON
// Schema document, as the API sends it.
func (e *engine) buildSpecSchema(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"title":                "MIOSA sandbox template build spec",
		"type":                 "object",
		"required":             []string{"runtime"},
		"properties":           buildSpecProperties,
		"additionalProperties": false,
	})
}
