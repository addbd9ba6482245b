package miosa

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/miosa-ai/miosa-go/internal/retry"
)

// sdkHeaders are the headers only the SDK sets: WithHeader extras under
// these names are dropped, so a body-less request cannot gain a
// Content-Type and a non-create call cannot gain an Idempotency-Key.
var sdkHeaders = map[string]bool{
	"Authorization": true, "User-Agent": true, "Accept": true,
	"Content-Type": true, "Content-Length": true, "Idempotency-Key": true,
}

// setHeaders writes the headers every request carries: the caller's extras,
// except those the SDK owns, then the SDK's own. The SDK's values are
// slices built once and shared by every request, not rebuilt per call.
func (c *Client) setHeaders(h http.Header, conf *settings, accept []string) {
	for k, v := range conf.headers {
		if !sdkHeaders[k] {
			h[k] = slices.Clone(v)
		}
	}
	h["Authorization"] = c.authorization.header()
	h["User-Agent"] = conf.userAgentHeader
	h["Accept"] = accept
}

var (
	acceptJSON        = []string{"application/json"}
	eventStreamAccept = []string{"text/event-stream"}
	anyMediaType      = []string{"*/*"}
)

const userAgent = "miosa-go/" + Version

// call describes one logical API call: the pipeline turns it into one or
// more HTTP attempts.
type call struct {
	method string
	path   string // relative to the base URL, already escaped
	query  url.Values
	body   any // JSON-encoded when non-nil; nil sends no body and no Content-Type
	// upload, when set, is the request body instead of body: it is called
	// once per attempt and returns the bytes to send (the same bytes each
	// time). It is how a file streams into a request without being held in
	// memory. Sending it is bounded by the caller's context and by
	// transferStallLimit without progress: the attempt deadline starts once
	// its last byte has been read, and then bounds only the wait for the
	// answer's headers.
	upload func() (uploadBody, error)
	// consume, when set, takes over a 2xx answer with its body still open,
	// instead of the pipeline reading it into memory: the attempt deadline
	// then ends with the answer's headers, the size cap does not apply, and
	// the body is read under the caller's context alone. Its error ends the
	// call, unless it wraps errNothingDelivered and the call may be sent
	// again. The pipeline closes the body afterwards.
	consume func(*http.Response) error
	// accept is the Accept header; nil means JSON.
	accept []string
	// keyed marks a create-type call: it carries an Idempotency-Key, the same
	// on every attempt, which makes it safe to retry.
	keyed bool
	// idempotent marks a call other than GET, PUT or DELETE that may be
	// repeated like them: doing it twice leaves the server as doing it once
	// (template validation, an upload that replaces a file).
	idempotent bool
	// attemptTimeout replaces the configured request timeout when non-zero.
	attemptTimeout time.Duration
	// goneIsDone marks a removal (a delete, a process stop): a 404 to any
	// attempt after the first is success, because the attempt before may
	// have removed the thing and lost its answer on the way back.
	goneIsDone bool
	// conflictHint, when set, is added to the message of a 409 answer: the
	// call the caller should make instead.
	conflictHint string
}

// replayable reports whether the call may be sent again after it may have
// reached the server: safe methods, idempotent calls and keyed creates.
// PATCH and POST are not, unless marked.
func (op *call) replayable() bool {
	switch op.method {
	case http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodPut:
		return true
	}
	return op.keyed || op.idempotent
}

// uploadBody is one attempt's streamed request body.
type uploadBody struct {
	r           io.Reader
	contentType string
	// length is how many bytes r yields, sent as Content-Length; -1 when
	// unknown (the body is then sent chunked).
	length int64
}

// response is the server's answer to one attempt: its status and headers,
// and its body read in full (capped), unless the call consumed it.
type response struct {
	status int
	header http.Header
	body   []byte
	// redirected says the answer came from where the server redirected
	// the request, not from the request's own endpoint.
	redirected bool
}

func (r *response) ok() bool { return r.status >= 200 && r.status <= 299 }

// errBodyTooLarge is a response over the size cap: never retried.
var errBodyTooLarge = errors.New("response body exceeds the size limit")

// errNothingDelivered marks a consume failure that happened before any of
// the body reached the caller (a download cut before its first byte): the
// call may then be sent again like any failed attempt of its kind.
var errNothingDelivered = errors.New("the answer broke off before any of it was delivered")

// send runs op through the pipeline: headers, idempotency key, attempts with
// per-attempt deadlines, backoff and Retry-After, until a 2xx answer or an
// error that is final. Whether a failed attempt is sent again is for
// shouldRetry alone to say.
func (c *Client) send(ctx context.Context, op call, opts []Option) (response, error) {
	conf, err := c.settingsFor(opts)
	if err != nil {
		return response{}, err
	}
	var payload []byte
	if op.body != nil {
		if payload, err = json.Marshal(op.body); err != nil {
			return response{}, fmt.Errorf("%w: %s %s: encoding the request body: %v", ErrInvalidParams, op.method, op.path, err)
		}
	}
	var key string
	if op.keyed {
		key = cmp.Or(conf.idempotencyKey, uuid.NewString())
	}
	if err := ctx.Err(); err != nil {
		// Nothing was sent, so this is not an unknown outcome.
		return response{}, fmt.Errorf("miosa: %s %s: not sent: %w", op.method, op.path, err)
	}
	var failure error // the last attempt's
	for attempt := 1; ; attempt++ {
		// Waiting for a turn to start is not an attempt: it is bounded by
		// the context, and its time is not the attempt's.
		start, attemptCtx, lead, err := c.traffic.await(ctx, conf, time.Now())
		if err != nil {
			if failure == nil {
				return response{}, fmt.Errorf("miosa: %s %s: not sent: %w", op.method, op.path, err)
			}
			return response{}, fmt.Errorf("miosa: %s %s: %w before it could be sent again; last attempt: %w", op.method, op.path, err, failure)
		}
		if attempt == 1 {
			c.traffic.budget.deposit(start)
		}
		res, err := c.attempt(attemptCtx, conf, &op, payload, key, start)
		lead.release(res.status != 0)
		if err == nil && (res.ok() || op.goneIsDone && attempt > 1 && res.status == http.StatusNotFound) {
			c.traffic.pacer.answered(res.status, 0, start)
			c.logAttempt(ctx, conf, &op, attempt, &res, start, nil, "")
			return res, nil
		}
		// A refusal's message comes from its body, which is never logged;
		// a transport error is.
		var transportErr error
		if err != nil {
			transportErr = c.transportError(&op, err)
			failure = transportErr
		} else {
			apiErr := c.newAPIError(&op, conf, key, &res)
			c.traffic.pacer.answered(res.status, min(apiErr.RetryAfter, conf.maxRetryAfter), start)
			failure = apiErr
			if res.redirected && !op.replayable() {
				failure = &refusedAfterRedirectError{apiErr: apiErr}
			}
		}
		wait, why := c.nextAttempt(ctx, conf, &op, failure, attempt)
		c.logAttempt(ctx, conf, &op, attempt, &res, start, transportErr, why)
		if why == whyBudgetSpent {
			return response{}, fmt.Errorf("%w; not retried: %s", failure, why)
		} else if why != "" {
			return response{}, failure
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return response{}, errorf("miosa: %s %s: %w while waiting to retry; last attempt: %w", op.method, op.path, err, failure)
		}
	}
}

// nextAttempt says how long to wait before sending op again after failure,
// or, as a non-empty why, why it is not sent again. A retry after a server
// or network failure is paid from the client's retry budget, last, when
// nothing else stands in its way.
func (c *Client) nextAttempt(ctx context.Context, conf *settings, op *call, failure error, attempt int) (wait time.Duration, why string) {
	if again, why := shouldRetry(op, failure); !again {
		return 0, why
	}
	if ctx.Err() != nil {
		return 0, "the caller's context ended"
	}
	if attempt > conf.maxRetries {
		return 0, "no retries left"
	}
	wait = retry.Backoff(attempt-1, conf.retryMin, conf.retryMax)
	var apiErr *APIError
	if errors.As(failure, &apiErr) && apiErr.retryAfterGiven {
		if apiErr.RetryAfter > conf.maxRetryAfter {
			return 0, "the server asked for a wait longer than WithMaxRetryAfter"
		}
		wait = apiErr.RetryAfter
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
		return 0, "the context's deadline comes before the next attempt could"
	}
	if spendsRetryBudget(failure) && !c.traffic.budget.withdraw(time.Now()) {
		return 0, whyBudgetSpent
	}
	return wait, ""
}

// attempt sends one HTTP request and reads its answer. A non-2xx answer is
// returned as a response, its body capped and the rest drained briefly so
// the connection may be reused; only failures to get an answer are errors.
// The attempt's deadline counts from start.
func (c *Client) attempt(ctx context.Context, conf *settings, op *call, payload []byte, key string, start time.Time) (response, error) {
	timeout := cmp.Or(op.attemptTimeout, conf.requestTimeout)
	hc := conf.httpClient
	// A streamed body, sent or answered, is bounded by the caller's
	// context alone: the deadline covers only the wait for the headers.
	var (
		deadline     *headerDeadline
		cancelStream context.CancelCauseFunc // ends a streamed attempt, with why
	)
	if op.consume != nil || op.upload != nil {
		ctx, cancelStream = context.WithCancelCause(ctx)
		defer cancelStream(nil)
		deadline = &headerDeadline{timeout: timeout, expire: func() { cancelStream(errNoHeaders) }}
		defer deadline.stop()
		if op.upload == nil {
			deadline.start()
		}
		streaming := *hc
		streaming.Timeout = 0 // it would cut the body too
		hc = &streaming
	} else if callerDeadline, ok := ctx.Deadline(); !ok || callerDeadline.After(start.Add(timeout)) {
		// The attempt needs a deadline of its own only when it comes
		// before the caller's.
		var end func()
		ctx, end = withAttemptDeadline(ctx, start.Add(timeout), hc.Transport)
		defer end()
	}
	req, err := c.newRequest(ctx, conf, op, payload, key)
	if err != nil {
		return response{}, err
	}
	var progress *uploadProgress
	if op.upload != nil {
		progress = &uploadProgress{ReadCloser: req.Body, done: deadline.start,
			stall: time.AfterFunc(transferStallLimit, func() { cancelStream(errUploadStalled) })}
		defer progress.stall.Stop()
		req.Body = progress
	}
	resp, err := hc.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errNoHeaders) || errors.Is(cause, errUploadStalled) {
			err = cause
		}
		return response{}, err
	}
	defer resp.Body.Close()
	res := response{status: resp.StatusCode, header: resp.Header, redirected: resp.Request != nil && resp.Request.Response != nil}
	if progress != nil && res.ok() {
		// Success needs the form sent to its end.
		if err := progress.answeredEarly(res.status, req.ContentLength); err != nil {
			return res, err
		}
	}
	switch {
	case res.ok() && op.consume != nil:
		if !deadline.stop() {
			return res, errNoHeaders
		}
		if err := op.consume(resp); err != nil {
			return res, &bodyError{err}
		}
		return res, nil
	case res.ok():
		res.body, err = readCapped(resp.Body, resp.ContentLength, conf.maxResponseBytes)
		res.body = c.key.scrubBytes(res.body)
		return res, err
	}
	if op.consume != nil {
		// A stream's refusal is read as briefly as the rest of any refused
		// body is drained: the call falls back or fails at once, however
		// slowly the body would come.
		deadline.stop()
		cutOff := time.AfterFunc(drainTimeout, func() { resp.Body.Close() })
		defer cutOff.Stop()
	}
	// The status is the answer: a body that breaks off (or is cut off)
	// leaves its message short, not the answer unknown.
	res.body, _ = readCapped(resp.Body, -1, maxErrorBody)
	drainBriefly(resp.Body)
	return res, nil
}

// newRequest builds one attempt's HTTP request with every header the SDK
// sends.
func (c *Client) newRequest(ctx context.Context, conf *settings, op *call, payload []byte, key string) (*http.Request, error) {
	target := conf.baseURL + op.path
	if len(op.query) > 0 {
		target += "?" + op.query.Encode()
	}
	var (
		body        io.Reader
		contentType string
		length      int64 = -1
	)
	switch {
	case op.upload != nil:
		upload, err := op.upload()
		if err != nil {
			return nil, &bodyError{err}
		}
		body, contentType, length = upload.r, upload.contentType, upload.length
	case op.body != nil:
		body, contentType = bytes.NewReader(payload), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, op.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v", ErrInvalidParams, op.method, op.path, err)
	}
	if length >= 0 {
		req.ContentLength = length
	}
	accept := op.accept
	if accept == nil {
		accept = acceptJSON
	}
	c.setHeaders(req.Header, conf, accept)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return req, nil
}

// readCapped reads r to the end, failing with errBodyTooLarge as soon as it
// is known to exceed limit: at once when the declared length says so,
// otherwise after reading limit+1 bytes, so memory stays bounded by limit.
// A declared length is believed only up to preallocLimit: beyond it the
// buffer grows as bytes actually arrive, so an answer that declares much and
// sends little claims little. For a too-large body the first limit bytes
// are still returned.
func readCapped(r io.Reader, declared, limit int64) ([]byte, error) {
	if declared > limit {
		return nil, fmt.Errorf("%w: %d bytes declared, limit %d", errBodyTooLarge, declared, limit)
	}
	size := int64(512)
	if declared >= 0 {
		// One spare byte sees the end of the body without growing.
		size = min(declared+1, preallocLimit)
	}
	buf := make([]byte, 0, min(size, limit+1))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf[:limit], fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, limit)
			}
			grown := min(2*int64(cap(buf)), limit+1)
			buf = append(make([]byte, 0, grown), buf...)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) > limit {
		return buf[:limit], fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, limit)
	}
	return buf, nil
}

// drainBriefly reads and discards what is left of a refused answer so its
// connection can be reused, but never for long: a body that does not end
// within drainTimeout (or maxDrain bytes) is closed instead, which costs
// only the connection.
func drainBriefly(body io.ReadCloser) { drainWithin(body, drainTimeout) }

// drainWithin reads and discards what is left of body for at most timeout
// (and maxDrain bytes), and reports whether the body ended within them.
func drainWithin(body io.ReadCloser, timeout time.Duration) (ended bool) {
	t := time.AfterFunc(timeout, func() { body.Close() })
	defer t.Stop()
	_, err := io.CopyN(io.Discard, body, maxDrain)
	return err == io.EOF
}

// logAttempt writes the debug line of one attempt: what was sent, what came
// back, the transport error if there was no answer, and, when the call ends
// on a failure, why it is not sent again.
func (c *Client) logAttempt(ctx context.Context, conf *settings, op *call, n int, res *response, start time.Time, transportErr error, notRetried string) {
	if conf.logger == nil || !conf.logger.Enabled(ctx, slog.LevelDebug) {
		return
	}
	requestID := c.requestID(res.header)
	attrs := []slog.Attr{
		slog.String("method", op.method),
		slog.String("path", op.path),
		slog.Int("status", res.status),
		slog.Int("attempt", n),
		slog.String("request_id", requestID),
		slog.Duration("duration", time.Since(start)),
	}
	if transportErr != nil {
		attrs = append(attrs, slog.String("error", transportErr.Error()))
	}
	if notRetried != "" {
		attrs = append(attrs, slog.String("not_retried", notRetried))
	}
	conf.logger.LogAttrs(ctx, slog.LevelDebug, "miosa: request", attrs...)
}

// requestID returns the answer's X-Request-ID as one short line of text
// without the key: it comes from the server and ends up in errors and logs.
func (c *Client) requestID(h http.Header) string {
	// Indexed under its canonical form: Header.Get would canonicalise the
	// name on every call.
	v := h["X-Request-Id"]
	if len(v) == 0 {
		return ""
	}
	return c.key.scrub(capText(v[0], maxRequestID))
}

// newAPIError builds the error for a non-2xx answer, with every text the
// server sent cleaned of the API key.
func (c *Client) newAPIError(op *call, conf *settings, key string, res *response) *APIError {
	body := c.key.scrubBytes(res.body)
	e := parseErrorBody(res.status, body)
	if d, ok := retry.ParseRetryAfter(res.header.Get("Retry-After"), time.Now()); ok {
		e.RetryAfter, e.retryAfterGiven = d, true
	}
	if res.status == http.StatusNotFound && e.Code == "" && !strings.HasSuffix(conf.baseURL, "/api/v1") {
		e.Message += " (the base URL " + conf.baseURL + " does not end in /api/v1: is it the API root?)"
	}
	if res.status == http.StatusConflict && op.conflictHint != "" {
		e.Message += " (" + op.conflictHint + ")"
	}
	e.RequestID = c.requestID(res.header)
	e.IdempotencyKey = key
	e.Method, e.Path = op.method, op.path
	e.Body = body
	return e
}

// transportError wraps a failure to get an answer. When the request may
// have reached the server and must not be sent twice, it also matches
// ErrOutcomeUnknown. Go's HTTP client quotes what it could not parse, so
// the text is made one capped line without the key, like any server text,
// that says "miosa: " once (see errorf).
func (c *Client) transportError(op *call, err error) error {
	var (
		wrapped  error
		redirect *redirectError
	)
	switch {
	case errors.As(err, &redirect):
		// Not the url.Error around it: that quotes the whole location.
		wrapped = fmt.Errorf("miosa: %s %s: %w", op.method, op.path, redirect)
	case !op.replayable() && !neverReachedServer(err) && !errors.Is(err, errBodyTooLarge) && !errors.Is(err, errAnsweredEarly):
		wrapped = fmt.Errorf("miosa: %s %s: %w: %w", op.method, op.path, ErrOutcomeUnknown, err)
	default:
		wrapped = fmt.Errorf("miosa: %s %s: %w", op.method, op.path, err)
	}
	text := wrapped.Error()
	if clean := c.key.scrub(capText(oncePrefixed(text), maxTransportError)); clean != text {
		return &cleanedError{text: clean, err: wrapped}
	}
	return wrapped
}

// cleanedError is an error whose text was capped and cleaned of the key;
// what it matches is unchanged.
type cleanedError struct {
	text string
	err  error
}

func (e *cleanedError) Error() string { return e.text }
func (e *cleanedError) Unwrap() error { return e.err }

// neverReachedServer reports whether err proves the request was never
// delivered: the connection could not be made (DNS, dial, proxy, TLS
// handshake). Anything else may have reached the server.
func neverReachedServer(err error) bool {
	var opErr *net.OpError
	if errors.As(err, &opErr) && (opErr.Op == "dial" || opErr.Op == "proxyconnect") {
		return true
	}
	var (
		dnsErr    *net.DNSError
		certErr   *tls.CertificateVerificationError
		recordErr tls.RecordHeaderError
		alertErr  tls.AlertError
	)
	return errors.As(err, &dnsErr) || errors.As(err, &certErr) ||
		errors.As(err, &recordErr) || errors.As(err, &alertErr)
}

// pathID path-escapes one id for use as a path segment, refusing ids that
// are empty or could change which endpoint the request reaches.
func pathID(what, id string) (string, error) {
	switch {
	case strings.TrimSpace(id) == "":
		return "", fmt.Errorf("%w: %s id is empty", ErrInvalidParams, what)
	case id == "." || id == "..":
		return "", fmt.Errorf("%w: %s id %q is not an id", ErrInvalidParams, what, id)
	case strings.ContainsFunc(id, isControl):
		return "", fmt.Errorf("%w: %s id contains control characters", ErrInvalidParams, what)
	}
	return url.PathEscape(id), nil
}
