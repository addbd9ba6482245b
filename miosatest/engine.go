package miosatest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The engine behind Server: an in-memory, stateful implementation of the
// MIOSA HTTP API as the wire contract describes it.
//
// It is an http.Handler. Every request goes through the same steps: read and
// log it, check the API key, apply an injected fault if one matches, then
// route it, through the idempotency layer for create-type calls. Each concern
// lives in its own file: state (machines, templates, builds), one file of
// handlers per resource, the readiness stream, faults, idempotency and the
// request log. The types a test touches (Fault, Request, ExecStream, ...) are
// declared beside the engine code that uses them, once.

// engineConfig tunes an engine. The zero value is usable; newEngine fills in
// defaults.
type engineConfig struct {
	// BasePath is where the API is mounted; default "/api/v1".
	BasePath string
	// APIKey, when set, is the only key accepted; otherwise any key starting
	// with "msk_" is.
	APIKey string
	// BootDelay is how long a machine stays "creating" or "starting" before
	// it is "running". Zero boots at once.
	BootDelay time.Duration
	// BuildStepDelay is how long a template build stays in each of "queued"
	// and "building". Zero finishes builds at once.
	BuildStepDelay time.Duration
	// HeartbeatInterval is the time between ": keepalive" comments on the
	// readiness stream; default 15 s.
	HeartbeatInterval time.Duration
	// StreamTimeout is how long the readiness stream waits before it sends
	// "event: timeout"; default 30 s.
	StreamTimeout time.Duration
	// NoReadinessStream makes the readiness stream answer 404, as a server
	// that predates it does.
	NoReadinessStream bool
	// StrictValidation makes the validate endpoint answer an invalid build
	// spec with 422 instead of 200 {"valid": false}.
	StrictValidation bool
	// LenientDelete makes DELETE /computers/{id} without force=true remove
	// a machine whatever its state. By default such a delete of a machine
	// that is not stopped is refused with 409 CONFLICT.
	LenientDelete bool
	// DataEnvelope wraps every object answer in {"data": ...}. By default
	// each endpoint answers in the shape the official SDKs' fixtures show:
	// bare objects for computer create and get, exec, preview tokens, fork
	// and validate; "data" for templates, builds, lists and readiness.
	DataEnvelope bool
	// BuildStates makes builds and templates report their state under
	// "state", as newer servers do, with the newer field names
	// (sandbox_template_id, error_code, error_message), and moves builds
	// through queued, building, certifying and snapshotting to ready (or
	// failed).
	BuildStates bool
	// RetryableStarting makes exec on a machine still booting answer 409
	// SANDBOX_STARTING (COMPUTER_STARTING for a desktop) in the canonical
	// error envelope, retryable, with retry_after_ms, as newer servers do.
	// By default it answers 409 NOT_RUNNING.
	RetryableStarting bool
	// SilentReadinessStream makes every readiness stream open and then send
	// only heartbeats, never a verdict.
	SilentReadinessStream bool
	// NoExecStream makes the streamed exec answer 404, as a server that
	// predates it does.
	NoExecStream bool
	// LocalShell runs exec requests on this machine with /bin/sh and python3,
	// each machine in its own temporary directory. It is not isolated.
	LocalShell bool
	// Desktop is how desktops behave: screen size, disputed spellings.
	Desktop desktopConfig
	// RateLimit, when positive, is how many requests a second the server
	// accepts (see ratelimit.go); the rest are refused with 429.
	RateLimit int
}

const (
	defaultBasePath          = "/api/v1"
	defaultHeartbeatInterval = 15 * time.Second
	defaultStreamTimeout     = 30 * time.Second
	// maxRequestBody caps what the engine reads of a request body.
	maxRequestBody = 8 << 20
)

// engine serves the fake API. It is safe for concurrent use.
type engine struct {
	cfg engineConfig
	mux *http.ServeMux
	// closeCtx ends when the engine closes; closing is its Done channel.
	closeCtx context.Context
	closeNow context.CancelFunc
	closing  <-chan struct{}
	once     sync.Once

	// mu guards the resources and the timers that move them along.
	mu        sync.Mutex
	closed    bool
	seq       int // ids and creation order
	machines  map[string]*machine
	templates map[string]*template
	builds    map[string]*build
	failures  failQueue // the next builds that must fail
	snapshots snapshotStore
	timers    map[*time.Timer]struct{}
	desktops  map[string]*screen // by machine id, made on first use

	faults faultList
	log    requestLog
	idem   idempotencyStore
	execs  execRegistry
	// streams holds the scripted streamed commands.
	streams execStreams
	shell   localShell
	exports exportStore
	procs   processTable
	rate    requestRate
}

// newEngine returns an engine configured by cfg, with defaults for unset fields.
func newEngine(cfg engineConfig) *engine {
	if cfg.BasePath == "" {
		cfg.BasePath = defaultBasePath
	}
	cfg.BasePath = "/" + strings.Trim(cfg.BasePath, "/")
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = defaultHeartbeatInterval
	}
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = defaultStreamTimeout
	}
	e := &engine{
		cfg:       cfg,
		mux:       http.NewServeMux(),
		machines:  map[string]*machine{},
		templates: map[string]*template{},
		builds:    map[string]*build{},
		timers:    map[*time.Timer]struct{}{},
		rate:      newRequestRate(cfg.RateLimit),
	}
	e.closeCtx, e.closeNow = context.WithCancel(context.Background())
	e.closing = e.closeCtx.Done()
	e.idem.init()
	e.routes()
	return e
}

// routes registers every endpoint of the wire contract, below the base
// path. Create-type calls go through the idempotency layer.
func (e *engine) routes() {
	for _, ep := range []struct {
		pattern string
		handler http.HandlerFunc
	}{
		{"POST /computers", e.idempotent(e.createComputer)},
		{"GET /computers", e.listComputers},
		{"GET /computers/{id}", e.getComputer},
		{"DELETE /computers/{id}", e.deleteComputer},
		{"POST /computers/{id}/start", e.startComputer},
		{"POST /computers/{id}/stop", e.stopComputer},
		{"POST /computers/{id}/restart", e.restartComputer},
		{"POST /computers/{id}/exec", e.execShell},
		{"POST /computers/{id}/exec/python", e.execPython},

		// Files, in the seed's forms and those of the later Go SDK (GET
		// and DELETE on /computers/{id}/files).
		{"POST /computers/{id}/files/upload", e.uploadFile},
		{"GET /computers/{id}/files/download", e.downloadFile},
		{"GET /computers/{id}/files/list", e.listFiles},
		{"GET /computers/{id}/files", e.listFilesEntries},
		{"DELETE /computers/{id}/files", e.deleteFile},
		{"POST /computers/{id}/files/export", e.exportFile},

		// The native sandbox lane, for the same machines (native.go), and
		// snapshots (snapshots.go).
		{"POST /sandboxes", e.idempotent(e.createNative)},
		{"GET /sandboxes", e.listNative},
		{"GET /sandboxes/{id}", e.getNative},
		{"DELETE /sandboxes/{id}", e.deleteNative},
		{"POST /sandboxes/{id}/stop", e.stopNative},
		{"POST /sandboxes/{id}/extend", e.extendSandbox},
		{"POST /sandboxes/{id}/pause", e.pauseSandbox},
		{"POST /sandboxes/{id}/resume", e.idempotent(e.resumeSandbox)},
		{"PATCH /sandboxes/{id}/tags", e.setTags},
		{"GET /sandboxes/{id}/files/tree", e.fileTree},
		{"POST /sandboxes/{id}/files/write-many", e.writeMany},
		{"POST /sandboxes/{id}/snapshots", e.idempotent(e.createSnapshot)},
		{"GET /sandboxes/{id}/snapshots", e.listSnapshots},
		{"DELETE /sandboxes/{id}/snapshots/{snapshot_id}", e.deleteSnapshot},
		{"POST /sandboxes/{id}/restore/{snapshot_id}", e.idempotent(e.restoreSnapshot)},
		// Desktop, on machines with one.
		{"GET /computers/{id}/desktop/screenshot", e.screenshot},
		{"POST /computers/{id}/desktop/screenshot/region", e.screenshotRegion},
		{"GET /computers/{id}/desktop/cursor", e.cursor},
		{"GET /computers/{id}/desktop/windows", e.windows},
		{"POST /computers/{id}/desktop/click", e.desktopAction(ActionClick)},
		{"POST /computers/{id}/desktop/double-click", e.desktopAction(ActionDoubleClick)},
		{"POST /computers/{id}/desktop/move", e.desktopAction(ActionMove)},
		{"POST /computers/{id}/desktop/drag", e.desktopAction(ActionDrag)},
		{"POST /computers/{id}/desktop/scroll", e.desktopAction(ActionScroll)},
		{"POST /computers/{id}/desktop/type", e.desktopAction(ActionType)},
		{"POST /computers/{id}/desktop/key", e.desktopAction(ActionKey)},
		{"POST /computers/{id}/desktop/window/focus", e.desktopAction(ActionFocus)},
		{"POST /computers/{id}/desktop/launch", e.desktopAction(ActionLaunch)},

		{"POST /sandboxes/{id}/fork", e.idempotent(e.forkSandbox)},
		{"PATCH /sandboxes/{id}", e.updateSandbox},
		{"POST /sandboxes/{id}/preview-token", e.previewToken},
		{"GET /sandboxes/{id}/readiness", e.readiness},
		{"GET /sandboxes/{id}/readiness/stream", e.readinessStream},
		{"POST /sandboxes/{id}/exec/stream", e.execStream},
		{"POST /sandboxes/{id}/processes", e.startProcess},
		{"GET /sandboxes/{id}/processes", e.listProcesses},
		{"GET /sandboxes/{id}/processes/{pid}", e.getProcess},
		{"DELETE /sandboxes/{id}/processes/{pid}", e.stopProcess},
		{"GET /sandboxes/{id}/processes/{pid}/logs", e.processLogs},
		{"POST /sandboxes/{id}/processes/{pid}/stdin", e.writeProcessStdin},
		{"GET /sandboxes/{id}/processes/{pid}/stream", e.processStream},

		{"GET /sandbox-templates", e.listTemplates},
		{"POST /sandbox-templates", e.idempotent(e.createTemplate)},
		{"GET /sandbox-templates/build-spec", e.buildSpecSchema},
		{"POST /sandbox-templates/validate", e.validateSpec},
		{"GET /sandbox-templates/{id}", e.getTemplate},
		{"GET /sandbox-templates/{id}/builds", e.listBuilds},
		{"POST /sandbox-templates/{id}/builds", e.idempotent(e.createBuild)},
	} {
		method, path, _ := strings.Cut(ep.pattern, " ")
		e.mux.HandleFunc(method+" "+e.cfg.BasePath+path, ep.handler)
	}
}

// ServeHTTP logs the request, authenticates it, applies a matching fault and
// routes it.
func (e *engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rel := strings.TrimPrefix(r.URL.Path, e.cfg.BasePath)
	underBase := r.URL.Path == e.cfg.BasePath || strings.HasPrefix(r.URL.Path, e.cfg.BasePath+"/")
	if !underBase {
		rel = r.URL.Path
	}
	var body []byte
	// A file upload streams to disk instead; its parts are logged as read.
	if !isUpload(r.Method, rel) {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1)); err != nil {
			// The client went away mid-body: there is nobody to answer.
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	entry := e.log.add(r, rel, body)
	sw := &statusWriter{ResponseWriter: w}
	defer func() { e.log.finish(entry, sw.status) }()
	w = sw
	w.Header().Set("X-Request-ID", entry.ID)

	switch {
	case len(body) > maxRequestBody:
		writeError(w, http.StatusRequestEntityTooLarge, "INVALID", fmt.Sprintf("request body exceeds %d bytes", maxRequestBody))
		return
	case strings.HasPrefix(r.URL.Path, exportPath):
		// A signed URL: it needs no key, and is no part of the API.
		e.serveExport(w, r)
		return
	case !underBase:
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("no route for %s %s: the API lives under %s", r.Method, r.URL.Path, e.cfg.BasePath))
		return
	}
	if msg, ok := e.authenticate(r.Header.Get("Authorization")); !ok {
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
		return
	}
	if e.rate.refuse(w) {
		return
	}
	if f, ok := e.faults.take(r.Method, rel); ok {
		e.applyFault(w, r, f)
		return
	}
	e.route(w, r)
}

// route sends r to its endpoint, or answers 404 as the real API does for a
// path it does not serve.
func (e *engine) route(w http.ResponseWriter, r *http.Request) {
	// Handler only looks the route up; ServeHTTP also fills r's path values.
	if _, pattern := e.mux.Handler(r); pattern == "" {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
		return
	}
	e.mux.ServeHTTP(w, r)
}

func (e *engine) authenticate(header string) (string, bool) {
	scheme, key, ok := strings.Cut(header, " ")
	switch {
	case header == "":
		return "missing Authorization header: send Authorization: Bearer msk_...", false
	case !ok || !strings.EqualFold(scheme, "Bearer") || !strings.HasPrefix(key, "msk_"):
		return "invalid Authorization header: want Bearer msk_...", false
	case e.cfg.APIKey != "" && key != e.cfg.APIKey:
		return "invalid API key", false
	}
	return "", true
}

// Close ends every open readiness stream, pending delay, running local
// command and background process (and waits for the processes), and stops
// the timers that move resources along. It does not close connections; the
// HTTP server that serves the engine does.
func (e *engine) Close() {
	e.once.Do(func() {
		e.closeNow()
		e.mu.Lock()
		e.closed = true
		for t := range e.timers {
			t.Stop()
		}
		clear(e.timers)
		e.mu.Unlock()
		// Every background process was killed by closeNow.
		e.procs.running.Wait()
	})
}

// Cleanup removes what the engine left on disk (local shell directories).
// Call it after the HTTP server has stopped, when no command can still run.
func (e *engine) Cleanup() error {
	return e.shell.removeAll()
}

func (e *engine) now() time.Time { return time.Now().UTC() }

// after runs fn with e.mu held once d has passed, unless the engine closes
// first. With d <= 0 it runs fn at once; the caller must already hold e.mu.
func (e *engine) after(d time.Duration, fn func()) {
	if d <= 0 {
		fn()
		return
	}
	if e.closed {
		return
	}
	var t *time.Timer
	// The callback takes e.mu, which the caller holds, so t is assigned
	// before the callback can read it.
	t = time.AfterFunc(d, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		delete(e.timers, t)
		if !e.closed {
			fn()
		}
	})
	e.timers[t] = struct{}{}
}

// requestContext is r's context, also cancelled when the engine closes.
func (e *engine) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(e.closeCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// statusWriter remembers the status written, for the request log, and
// forwards flushing and hijacking to the connection's writer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
