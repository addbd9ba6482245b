// Package miosatest is a fake MIOSA API for tests: what net/http/httptest is
// to net/http, this package is to miosa.
//
// NewServer starts an in-memory, stateful implementation of every endpoint
// of the API (computers, sandboxes, the readiness stream, templates and
// builds, exec, files, snapshots, and the native /sandboxes routes) on a
// loopback address and stops it when the test ends.
// Machines boot ("creating" → "running") after a short delay, the readiness
// stream is real server-sent events, create calls honour Idempotency-Key
// like a careful server, and errors use the API's error envelope. On top of
// that it records every request, answers exec calls with results you
// register, streams exec output line by line (scripted with delays and
// faults by HandleExecStream, or the real output of WithLocalShell), keeps
// a table of background processes per sandbox (scripted by HandleProcess,
// or real under WithLocalShell), and injects faults on demand.
//
// A test of your own code, copy-paste ready:
//
//	func TestProvisioner_CreatesOneSandbox(t *testing.T) {
//		srv := miosatest.NewServer(t)
//		srv.HandleExec("node --version", miosatest.ExecResult{Stdout: "v20.11.0\n"})
//		client := srv.Client()
//
//		sb, err := client.Computers.Create(t.Context(), miosa.ComputerCreateParams{
//			Name: "ci", TemplateType: miosa.DefaultSandboxTemplate,
//		})
//		require.NoError(t, err)
//		_, err = client.Computers.WaitForStatus(t.Context(), sb.ID, miosa.StatusRunning, miosa.WaitOptions{})
//		require.NoError(t, err)
//		res, err := client.Exec.Run(t.Context(), sb.ID, miosa.ExecParams{Command: "node --version"})
//		require.NoError(t, err)
//		assert.Equal(t, "v20.11.0\n", res.Stdout)
//
//		creates := srv.RequestsTo("POST", "/computers")
//		require.Len(t, creates, 1)
//		assert.NotEmpty(t, creates[0].IdempotencyKey())
//		assert.JSONEq(t, `{"name":"ci","template_type":"miosa-sandbox"}`, string(creates[0].Body))
//	}
//
// # What the fake assumes, and why
//
// The fake follows what the official MIOSA SDKs' own test fixtures and types
// (Go, TypeScript, Python, Elixir) show the server saying, so that a test
// that passes here teaches something about the real API, whichever client
// it uses:
//
//   - Shapes: computer create (201) and get, both exec routes, preview
//     tokens (200), fork (200), file export and validate answer a bare
//     object; templates, builds, lists, readiness, snapshots and the native
//     sandbox routes answer under "data". WithDataEnvelope wraps every object
//     instead.
//   - Error bodies are the nested envelope {"error": {"code", "message"}}
//     with the message also at the top level, which the official Go SDK
//     reads first.
//   - Visibility is "tenant" ("public", "tenant" and "key" exist).
//   - A plain DELETE of a machine that is not stopped is refused (409)
//     unless force=true, as the API's documentation says; WithLenientDelete
//     allows it, and the 409's message says so (the official Go SDK never
//     sends force=true). Destroy (force=true) works in both.
//   - Lists are paged 20 per page by default (one fixture shows 20), so code
//     that reads only the first page fails here before it fails in
//     production.
//   - Create and fork refuse (422) fields they do not know, rather than
//     dropping them; create applies the sandbox settings (tags, always_on,
//     timeout_sec, idle_timeout_sec). A template_type that is neither built
//     in nor a built template of yours fails with 422 TEMPLATE_NOT_FOUND (or
//     TEMPLATE_NOT_READY before its first build succeeds).
//   - Fork also takes timeout_sec and template_id (an official fixture
//     sends them), answers under both namings (status and template_type,
//     state and template_id), and starts with a copy of its source's files,
//     or of the files of the ready snapshot snapshot_id names.
//   - The native sandbox routes serve the same machines as /computers:
//     POST /sandboxes (template_id; 201 with state "provisioning", the
//     native name of "creating"), GET and DELETE /sandboxes/{id} (the
//     delete, 204, needs no force), GET /sandboxes (every machine but
//     desktops), stop, extend, pause, resume, PATCH .../tags, and the newer
//     Go SDK's files/tree and files/write-many (bare answers). Their
//     object says "state" and "template_id" instead of "status" and
//     "template_type". Extend makes timeout_sec the new timeout, as the
//     official SDKs describe it; the fake stops no machine at its timeout.
//     A paused machine refuses exec and files with 409 NOT_RUNNING.
//   - Snapshots move creating → uploading → ready (or failed, FailSnapshots)
//     one WithBuildStepDelay per step, capture the sandbox's files when
//     taken, and outlive their sandbox. A restore is a new machine with the
//     snapshot's settings and a copy of its files; restoring or forking from
//     a snapshot still on its way answers 409 SNAPSHOT_NOT_READY, retryable.
//     Invented, since no SDK shows them: a week's retention by default (a
//     reported expires_at, not enforced) and a failed snapshot's "error".
//   - An Idempotency-Key whose first call was refused (4xx) is free again:
//     that call did nothing, so it may be sent once more and done.
//   - Exec's "timeout" is read as milliseconds, the unit of
//     POST /computers/{id}/exec; any number is accepted, since clients
//     differ; the request log (Requests) keeps the body as sent, and an
//     exec handler sees the number as sent in ExecRequest.TimeoutSent.
//
// Some of this is disputed between the SDKs, or invented where nothing is
// known (the 201 of template create, the build-spec schema, the limits on
// preview tokens). Modes reproduce what newer servers say: WithBuildStates
// (builds under "state", queued → building → certifying → snapshotting →
// ready), WithRetryableStarting (exec on a booting machine answers a
// retryable 409 SANDBOX_STARTING), WithSilentReadinessStream (a stream that
// opens and then says nothing).
//
// # Fast waits
//
// The fake boots machines in DefaultBootDelay and moves builds every
// DefaultBuildStepDelay, but a wait polls at its own interval: by default
// every 2 s for Computers.WaitForStatus and SandboxTemplates.WaitForBuild.
// Clients from Server.Client poll every PollInterval instead, so a test
// waits milliseconds. A client of your own gets the same with
//
//	client, err := miosa.NewClient(key, miosa.WithBaseURL(srv.URL),
//		miosa.WithPollInterval(miosatest.PollInterval))
//
// Sandboxes.WaitUntilReady needs nothing: it follows the readiness stream,
// and polls every 10 ms without it.
//
// # Faults
//
// Inject makes the next matching requests fail: with a status (and a
// Retry-After header or any body), by dropping the connection before or
// after the server acted, after a delay, or, for the readiness stream, by
// stalling or ending without a verdict:
//
//	srv.Inject(miosatest.Fault{Method: "POST", Path: "/computers", Drop: miosatest.DropAfterAct})
//	srv.Inject(miosatest.Fault{Path: "/computers/*", Status: 503, RetryAfter: time.Second, Times: 2})
//	srv.Inject(miosatest.Fault{Stream: miosatest.StreamStall})
//
// # Fleets
//
// WithRateLimit(n) accepts n requests a second and refuses the rest with
// 429 and Retry-After, as a rate-limited API does; Conns counts the
// connections the server accepted and the requests it served at once;
// WithMaxConcurrentStreams sets how many HTTP/2 streams one connection
// carries, and WithoutHTTP2 serves HTTPS over HTTP/1.1 only. With them a
// test can check what a fleet of its own goroutines costs the API:
//
//	srv := miosatest.NewServer(t, miosatest.WithTLS(), miosatest.WithRateLimit(100))
//	// ... 500 creates at once through srv.Client() ...
//	assert.LessOrEqual(t, srv.Conns().Accepted, 4)
//
// # Exec
//
// HandleExec and HandlePython register results per exact command or code;
// HandleExecFunc answers the rest. Without them, "echo ..." echoes and any
// other command exits 127. WithLocalShell runs commands for real on this
// machine, in a temporary directory per computer; it is not isolated. As on
// the real server, a command runs on when its client goes away (a break out
// of a stream, a context that ends during Run): it ends by itself, by its
// timeout, when its machine stops or is deleted, or when the server closes.
//
// # Files
//
// Every running machine has a file tree behind the files endpoints (upload,
// download, list, delete, export), kept on disk in that same temporary
// directory, so commands run by WithLocalShell see uploaded files and leave
// files to download. Deleting a machine deletes its tree. Files stream to
// and from disk, never held in memory.
// An export's URL serves the file without the key for an hour. The later Go
// SDK's forms are answered too: GET /computers/{id}/files?path= and DELETE
// /computers/{id}/files with the path in a JSON body. An upload's Request
// has no Body: its form's parts are in Parts. WriteFile and ReadFile seed
// and inspect the tree directly. DropMidAnswer cuts a download halfway:
//
//	srv.Inject(miosatest.Fault{Path: "/computers/*/files/download", Drop: miosatest.DropMidAnswer})
//
// # Desktops
//
// Every machine of template "miosa-desktop" has a virtual screen,
// WithScreenSize pixels (1024×768 by default), behind the desktop
// endpoints. Screenshots are real PNG images drawn from its state (the
// windows, the focused one's title bar, the pointer), of the whole screen
// or of a region. Click, move, drag and a scroll at a point move the
// pointer that the cursor endpoint reports; SetWindows sets the windows,
// launch opens one and focus focuses one. Desktop reports the screen and
// every action carried out, in order, with the text typed and the keys
// pressed. A point off the screen is refused with 422; a sandbox has no
// desktop (404 NO_DESKTOP); a stopped machine answers 409 NOT_RUNNING.
// Servers disagree on three spellings, and the fake takes the first by
// default: WithScrollAmount, WithLaunchAppName and WithIntegerWindowIDs
// take the other, refusing the first with 422. WithOKActionAnswers answers
// {"ok": true} instead of {"success": true}. An agent that must never click
// twice is tested by losing the answer after the click:
//
//	srv.Inject(miosatest.Fault{Path: "/computers/*/desktop/click", Drop: miosatest.DropAfterAct})
//
// # Fake time
//
// With WithInMemoryNetwork the server and its clients talk over in-memory
// pipes, so a test that starts the server inside testing/synctest.Test sees
// every delay of the fake (boot, builds, the readiness stream's heartbeats
// and 30 s timeout) pass in the bubble's fake time, instantly and exactly.
//
// # Outside tests
//
// Start runs the same server without a testing.TB, for examples and local
// tools; Close stops it.
package miosatest
