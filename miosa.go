// Package miosa is the Go client for MIOSA, the cloud that rents sandboxes
// (lightweight code-execution machines) and computers (full desktops) to AI
// agents.
//
// # Quick start
//
//	client, err := miosa.NewClient("") // reads MIOSA_API_KEY
//	if err != nil { ... }
//	err = client.Sandboxes.Use(ctx, miosa.ComputerCreateParams{Name: "demo"}, func(ctx context.Context, sb *miosa.Sandbox) error {
//		res, err := client.Exec.Run(ctx, sb.ID, miosa.ExecParams{Command: "echo hello"})
//		if err != nil {
//			return err
//		}
//		fmt.Print(res.Output)
//		return res.Err()
//	})
//
// Sandboxes.Use creates the sandbox, waits until it is ready, runs the
// function and destroys the sandbox afterwards, whatever happens: no
// sandbox is left running, and billed, by a failure or a panic. To hold a
// sandbox longer, use Sandboxes.Create, Sandboxes.WaitUntilReady and
// Computers.Destroy.
//
// # Configuration
//
// NewClient takes the API key (or reads MIOSA_API_KEY) and options. Every
// Option can also be passed as the last argument of any service method to
// override the client's setting for that one call. An explicit option wins
// over the environment (MIOSA_API_KEY, MIOSA_BASE_URL), which wins over the
// defaults. A Client is safe for concurrent use and should be shared.
//
// # The API key
//
// The key is sent only to the base URL's origin (scheme, host and port): a
// redirect to any other origin is refused with an error naming where it
// pointed, whatever *http.Client is used. No printer (fmt, slog, JSON, a
// testify diff) shows the key, even through unexported fields, and a server
// that echoes it finds it redacted in every error, log line and Raw. Text a
// server sends (messages, codes, request ids) reaches errors as one capped
// line.
//
// # Errors
//
// Every non-2xx answer is an *APIError carrying the status, the server's code
// and message, the request id, the Retry-After hint and the capped raw body.
// Branch on its category with errors.Is (ErrNotFound, ErrRateLimited,
// ErrInsufficientCredits, ...) and read its fields with errors.As. Arguments
// that cannot be right (an empty id, a negative timeout) fail with
// ErrInvalidParams before any request is sent. Transport failures wrap their
// cause, so errors.Is(err, context.DeadlineExceeded) keeps working.
//
// # Retries and idempotency
//
// Each attempt has its own deadline (WithRequestTimeout). Failed attempts
// (408, 429, 500, 502, 503, 504 and transport errors) are retried up to
// WithMaxRetries times with jittered exponential backoff; a Retry-After hint
// replaces the backoff, and a hint longer than WithMaxRetryAfter is returned
// to the caller instead of slept. No wait outlasts the context's deadline:
// when the next attempt could not start in time, the last error is returned
// at once. Reads (GET, and template validation, which changes nothing) and
// deletes are retried freely. An answer the server marks retryable (it
// promises it did nothing) is retried whatever the call.
//
// Create-type calls (computer and sandbox create, fork, template create,
// build create, snapshot create, restore, resume) carry an Idempotency-Key,
// generated once per logical call or given with WithIdempotencyKey, and
// sent unchanged on every attempt, so the server creates at most one
// resource. Calls that are neither safe to repeat nor keyed (exec, start,
// stop, restart, update, extend, a desktop action, a process start or its
// stdin) are retried only when the request provably never reached the
// server, or was refused with 429. Once such a request may have arrived and
// no answer came back, the error matches ErrOutcomeUnknown: the command may
// or may not have run, the click may or may not have landed.
//
// # Waiting for readiness
//
// Sandboxes.WaitUntilReady first listens to the server's readiness stream
// (server-sent events) and reports ready the moment the server says so; if
// the stream is unavailable it falls back to polling. Computers.WaitForStatus
// and SandboxTemplates.WaitForBuild poll.
//
// # Streams
//
// Exec.Stream and Processes.Follow yield a command's output line by line as
// an iter.Seq2[ExecEvent, error], read on the caller's goroutine. Range over
// them with two variables: a one-variable range compiles and drops the
// error. ExecParams.Stdout and Stderr stream into writers instead, as
// os/exec does, and cannot drop it.
//
// # Desktops, processes and snapshots
//
// Desktop sees a desktop computer's screen (screenshots streamed into an
// io.Writer, checked to be a PNG) and drives it (click, type, keys, windows).
// Processes starts commands that outlive the call, found again by their
// sandbox id and PID from any goroutine or a restarted program. Snapshots
// checkpoints a sandbox and restores new sandboxes from a checkpoint;
// Sandboxes.Extend, Pause and Resume manage a sandbox's lifetime.
//
// # Testing
//
// Package miosatest is an in-memory fake of the whole API on loopback, for
// your own tests: srv := miosatest.NewServer(t); client := srv.Client().
package miosa

// Version is the SDK version, sent in the User-Agent as miosa-go/<Version>.
const Version = "0.2.0"

// DefaultBaseURL is the API root used when neither WithBaseURL nor
// MIOSA_BASE_URL is set.
const DefaultBaseURL = "https://api.miosa.ai/api/v1"

// DefaultSandboxTemplate is the template_type that makes a computer a
// sandbox: the lightweight code-execution image without a desktop.
const DefaultSandboxTemplate = "miosa-sandbox"

// Ptr returns a pointer to v, for the optional fields of params structs:
// miosa.Ptr(false) sends false where a nil pointer sends nothing.
func Ptr[T any](v T) *T { return &v }
