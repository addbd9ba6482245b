package miosa

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"time"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// SandboxesService creates and manages sandboxes: computers made from the
// sandbox template (DefaultSandboxTemplate). A sandbox id works everywhere a
// computer id does, so Exec and the lifecycle calls of Computers apply too.
type SandboxesService service

// Sandbox is a computer created from the sandbox template.
type Sandbox = Computer

// Template returns the template_type that makes a computer a sandbox,
// DefaultSandboxTemplate ("miosa-sandbox"). It sends no request.
func (s *SandboxesService) Template() string { return DefaultSandboxTemplate }

// Create asks the server to create a sandbox (POST /computers) and returns
// it, usually still "creating"; WaitUntilReady waits for it to boot.
// TemplateType defaults to DefaultSandboxTemplate; any other template the
// caller names is sent as given. The call carries an Idempotency-Key, reused
// on every retry, so it creates at most one sandbox.
func (s *SandboxesService) Create(ctx context.Context, params ComputerCreateParams, opts ...Option) (*Sandbox, error) {
	params.TemplateType = cmp.Or(params.TemplateType, DefaultSandboxTemplate)
	return s.client.Computers.Create(ctx, params, opts...)
}

// Get fetches one sandbox (GET /computers/{id}). An unknown id fails with an
// error matching ErrNotFound.
func (s *SandboxesService) Get(ctx context.Context, id string, opts ...Option) (*Sandbox, error) {
	if _, err := pathID("sandbox", id); err != nil {
		return nil, err
	}
	return s.client.Computers.Get(ctx, id, opts...)
}

// List returns the sandboxes on ONE page of computers: it lists computers
// (GET /computers, the server's first page, by default 20 machines) and
// keeps those whose template_type is DefaultSandboxTemplate, because the
// server has no sandbox filter of its own. It therefore misses sandboxes on
// later pages, and sandboxes made from a custom template, which carry that
// template's id or alias as their template_type. All walks every page; for
// a custom template, filter Computers.All by its template_type.
func (s *SandboxesService) List(ctx context.Context, opts ...Option) ([]Sandbox, error) {
	computers, err := s.client.Computers.List(ctx, ComputerListParams{}, opts...)
	if err != nil {
		return nil, err
	}
	sandboxes := []Sandbox{}
	for _, c := range computers {
		if isSandbox(c) {
			sandboxes = append(sandboxes, c)
		}
	}
	return sandboxes, nil
}

// All lists every sandbox, fetching pages of computers lazily
// (GET /computers, page after page, through Computers.All) and yielding
// those whose template_type is DefaultSandboxTemplate. Like Computers.All it
// ends after the last page, and also against a server that ignores "page";
// on failure, or when ctx ends, it yields one error and stops. Sandboxes
// made from a custom template are not included: filter Computers.All by
// that template's template_type.
//
// Range with two variables, for sb, err := range ..., and check err: a
// loop with one variable compiles but drops the error, so a listing cut
// short by a failure looks complete. Each range lists anew.
func (s *SandboxesService) All(ctx context.Context, opts ...Option) iter.Seq2[Sandbox, error] {
	return func(yield func(Sandbox, error) bool) {
		for c, err := range s.client.Computers.All(ctx, ComputerListParams{}, opts...) {
			if err != nil {
				yield(Sandbox{}, err)
				return
			}
			if isSandbox(c) && !yield(c, nil) {
				return
			}
		}
	}
}

// isSandbox reports whether c was made from the sandbox template.
func isSandbox(c Computer) bool { return c.TemplateType == DefaultSandboxTemplate }

// useDestroyTimeout bounds the destroy that ends Use, on its own: the
// caller's context may already be over when it runs.
const useDestroyTimeout = time.Minute

// Use holds a sandbox for the length of fn and never leaks it. It creates a
// sandbox (POST /computers, with an Idempotency-Key, TemplateType defaulting
// to DefaultSandboxTemplate), waits until it is ready (WaitUntilReady, with
// its default 30 s timeout), calls fn with it, and then always destroys it
// (DELETE /computers/{id}?force=true): also when fn fails or panics, when the
// wait fails, and when ctx is cancelled. The destroy runs on a context that
// keeps ctx's values but not its cancellation, bounded by one minute of its
// own; a destroy answered 404 (fn already removed it) counts as done. A
// panic in fn is re-raised once the sandbox is destroyed.
//
// The sandbox fn receives is the one Create returned: its Status and
// addresses are as of creation; Get it for fresh ones.
//
// Use returns fn's error joined (errors.Join) with any error of the wait or
// the destroy; a sandbox that never became ready is an error matching
// ErrWaitTimeout, and fn is then not called. When the create itself fails
// Use has no id to destroy, yet a create whose answer was lost may have made
// a sandbox: pass WithIdempotencyKey with a key of your own to make the
// whole Use safe to repeat, since the server then hands back that sandbox
// instead of making another.
func (s *SandboxesService) Use(ctx context.Context, params ComputerCreateParams, fn func(ctx context.Context, sb *Sandbox) error, opts ...Option) (err error) {
	if fn == nil {
		return fmt.Errorf("%w: Use needs a function to run with the sandbox", ErrInvalidParams)
	}
	sb, err := s.Create(ctx, params, opts...)
	if err != nil {
		return err
	}
	defer func() {
		failure := recover()
		err = errors.Join(err, s.destroyAfterUse(ctx, sb.ID, opts))
		if failure != nil {
			panic(failure)
		}
	}()
	ready, err := s.WaitUntilReady(ctx, sb.ID, WaitOptions{}, opts...)
	switch {
	case err != nil:
		return err
	case !ready:
		return fmt.Errorf("%w: sandbox %s did not become ready; it is being destroyed", ErrWaitTimeout, sb.ID)
	}
	return fn(ctx, sb)
}

// destroyAfterUse force-deletes the sandbox Use created, detached from
// ctx's cancellation and bounded on its own. Already gone counts as done.
func (s *SandboxesService) destroyAfterUse(ctx context.Context, id string, opts []Option) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), useDestroyTimeout)
	defer cancel()
	err := s.client.Computers.Destroy(ctx, id, opts...)
	if err == nil || errors.Is(err, ErrNotFound) {
		return nil
	}
	return errorf("miosa: destroying sandbox %s after use: %w", id, err)
}

// Delete deletes a sandbox (DELETE /computers/{id}). Like Computers.Delete it
// does not force, and the API refuses to delete a running sandbox that way
// (409, an error matching ErrConflict whose message says to use Destroy):
// Destroy stops and deletes in one call, and Use destroys the sandbox it
// created. It is retried like any DELETE; a 404 to a retry counts as done.
func (s *SandboxesService) Delete(ctx context.Context, id string, opts ...Option) error {
	if _, err := pathID("sandbox", id); err != nil {
		return err
	}
	return s.client.Computers.Delete(ctx, id, opts...)
}

// Destroy stops and deletes a sandbox in one call
// (DELETE /computers/{id}?force=true), as Computers.Destroy does, whatever
// its state. It is retried like any DELETE; a 404 to a retry counts as
// done, since the attempt whose answer was lost may have deleted it.
func (s *SandboxesService) Destroy(ctx context.Context, id string, opts ...Option) error {
	if _, err := pathID("sandbox", id); err != nil {
		return err
	}
	return s.client.Computers.Destroy(ctx, id, opts...)
}

// SandboxForkParams describes the copy made by Fork. Every field is
// optional and sent only when set.
type SandboxForkParams struct {
	// SnapshotID forks from this snapshot instead of the sandbox's current
	// state.
	SnapshotID string `json:"snapshot_id,omitzero"`
	// Name names the new sandbox.
	Name string `json:"name,omitzero"`
	// ExternalUserID attributes the new sandbox to one of your users; it is
	// a label only and never authorizes.
	ExternalUserID string `json:"external_user_id,omitzero"`
}

// Fork asks the server to copy a sandbox into a new one
// (POST /sandboxes/{id}/fork) and returns the new sandbox. The call carries
// an Idempotency-Key, reused on every retry, so it makes at most one copy.
func (s *SandboxesService) Fork(ctx context.Context, id string, params SandboxForkParams, opts ...Option) (*Sandbox, error) {
	path, err := sandboxPath(id, "/fork")
	if err != nil {
		return nil, err
	}
	return sendForObject[Sandbox](ctx, s.client, call{
		method: http.MethodPost, path: path, body: params, keyed: true,
	}, opts, "sandbox", "computer")
}

// SandboxUpdateParams lists the settings Update changes. Nil fields are not
// sent and keep their value on the server.
type SandboxUpdateParams struct {
	Name *string
	Slug *string
	// Tags replaces the sandbox's tags. Nil sends nothing; an empty non-nil
	// slice is sent as [] and clears them.
	Tags []string
	// Metadata replaces the sandbox's metadata. Nil sends nothing; an empty
	// non-nil map is sent as {}.
	Metadata map[string]any
	// AlwaysOn keeps the sandbox running when idle; Ptr(false) turns it off.
	AlwaysOn *bool
	// Timeout and IdleTimeout are sent as whole seconds (timeout_sec and
	// idle_timeout_sec); a duration with a fraction of a second is rounded
	// up, so a limit is never shortened. Negative durations are refused.
	Timeout     *time.Duration
	IdleTimeout *time.Duration
}

// sandboxUpdateBody is the PATCH body: only the keys the server accepts,
// each only when set.
type sandboxUpdateBody struct {
	Name           *string        `json:"name,omitempty"`
	Slug           *string        `json:"slug,omitempty"`
	Tags           []string       `json:"tags,omitzero"`
	Metadata       map[string]any `json:"metadata,omitzero"`
	AlwaysOn       *bool          `json:"always_on,omitempty"`
	TimeoutSec     *int64         `json:"timeout_sec,omitempty"`
	IdleTimeoutSec *int64         `json:"idle_timeout_sec,omitempty"`
}

func (p SandboxUpdateParams) body() (sandboxUpdateBody, error) {
	timeout, err := wholeSeconds("timeout", p.Timeout)
	if err != nil {
		return sandboxUpdateBody{}, err
	}
	idle, err := wholeSeconds("idle timeout", p.IdleTimeout)
	if err != nil {
		return sandboxUpdateBody{}, err
	}
	if p.Name == nil && p.Slug == nil && p.Tags == nil && p.Metadata == nil &&
		p.AlwaysOn == nil && p.Timeout == nil && p.IdleTimeout == nil {
		return sandboxUpdateBody{}, fmt.Errorf("%w: sandbox update sets nothing; set at least one field", ErrInvalidParams)
	}
	return sandboxUpdateBody{
		Name: p.Name, Slug: p.Slug, Tags: p.Tags, Metadata: p.Metadata,
		AlwaysOn: p.AlwaysOn, TimeoutSec: timeout, IdleTimeoutSec: idle,
	}, nil
}

// wholeSeconds converts an optional duration to whole seconds, rounding a
// fraction up.
func wholeSeconds(what string, d *time.Duration) (*int64, error) {
	if d == nil {
		return nil, nil
	}
	if *d < 0 {
		return nil, fmt.Errorf("%w: sandbox %s %s must not be negative", ErrInvalidParams, what, *d)
	}
	secs := int64(*d / time.Second)
	if *d%time.Second != 0 {
		secs++
	}
	return &secs, nil
}

// Update changes a sandbox's settings (PATCH /sandboxes/{id}), sending only
// the fields that are set, and returns the updated sandbox. A call that sets
// nothing fails with ErrInvalidParams before any request. It is not retried
// once it may have reached the server.
func (s *SandboxesService) Update(ctx context.Context, id string, params SandboxUpdateParams, opts ...Option) (*Sandbox, error) {
	path, err := sandboxPath(id, "")
	if err != nil {
		return nil, err
	}
	body, err := params.body()
	if err != nil {
		return nil, err
	}
	return sendForObject[Sandbox](ctx, s.client, call{method: http.MethodPatch, path: path, body: body}, opts, "sandbox", "computer")
}

// Known preview-token scopes. The set is open: another scope is sent as
// given.
const (
	PreviewScopeRead     = "read"     // view the sandbox's preview
	PreviewScopeInteract = "interact" // also interact with it
)

const defaultPreviewExpiry = time.Hour

// PreviewTokenParams describes a preview token. The zero value asks for a
// read-only token valid for one hour.
type PreviewTokenParams struct {
	// ExpiresIn is how long the token stays valid; 0 means one hour. It is
	// sent as whole seconds, a fraction rounded up.
	ExpiresIn time.Duration
	// Scope is PreviewScopeRead (the default) or PreviewScopeInteract.
	Scope string
}

// PreviewToken is a token that lets someone without an API key see (or, with
// the interact scope, use) a sandbox's preview.
type PreviewToken struct {
	Token     string    `json:"token"`
	URL       string    `json:"url"`
	Scope     string    `json:"scope"`
	ExpiresAt time.Time `json:"expires_at"`
	// Raw is the object exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a preview token, reading expires_at as a time, and
// keeps the raw object in Raw.
func (p *PreviewToken) UnmarshalJSON(data []byte) error {
	type plain PreviewToken
	var v struct {
		plain
		ExpiresAt wire.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*p = PreviewToken(v.plain)
	p.ExpiresAt = v.ExpiresAt.Time
	p.Raw = append(json.RawMessage(nil), data...)
	return nil
}

// PreviewToken asks the server for a token to share a sandbox's preview
// (POST /sandboxes/{id}/preview-token). expires_in and scope are always
// sent, with their defaults (3600 s, "read") when unset. Each call mints a
// new token, so it is not retried once it may have reached the server.
func (s *SandboxesService) PreviewToken(ctx context.Context, id string, params PreviewTokenParams, opts ...Option) (*PreviewToken, error) {
	path, err := sandboxPath(id, "/preview-token")
	if err != nil {
		return nil, err
	}
	expiry := cmp.Or(params.ExpiresIn, defaultPreviewExpiry)
	secs, err := wholeSeconds("preview token expiry", &expiry)
	if err != nil {
		return nil, err
	}
	body := struct {
		ExpiresIn int64  `json:"expires_in"`
		Scope     string `json:"scope"`
	}{*secs, cmp.Or(params.Scope, PreviewScopeRead)}
	return sendForObject[PreviewToken](ctx, s.client, call{method: http.MethodPost, path: path, body: body}, opts, "preview_token", "preview")
}

// Readiness is whether a sandbox has booted far enough to run commands.
type Readiness struct {
	// Ready is true exactly when the server said "ready": true or
	// "status": "ready"; nothing else counts.
	Ready bool
	// Status is the server's status string, if it sent one.
	Status string
	// ReadyAt is when the sandbox became ready, if the server said.
	ReadyAt time.Time
	// Raw is the object exactly as the server sent it.
	Raw json.RawMessage
}

// UnmarshalJSON decodes a readiness object. A "ready" that is not the JSON
// literal true (a string, a number, null) does not count as ready.
func (r *Readiness) UnmarshalJSON(data []byte) error {
	var v struct {
		Ready   json.RawMessage `json:"ready"`
		Status  json.RawMessage `json:"status"`
		ReadyAt wire.Time       `json:"ready_at"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	status := jsonString(v.Status)
	*r = Readiness{
		Ready:   isJSONTrue(v.Ready) || status == "ready",
		Status:  status,
		ReadyAt: v.ReadyAt.Time,
		Raw:     append(json.RawMessage(nil), data...),
	}
	return nil
}

// Readiness asks the server once whether a sandbox is ready
// (GET /sandboxes/{id}/readiness). It does not wait; WaitUntilReady does.
func (s *SandboxesService) Readiness(ctx context.Context, id string, opts ...Option) (*Readiness, error) {
	path, err := sandboxPath(id, "/readiness")
	if err != nil {
		return nil, err
	}
	return sendForObject[Readiness](ctx, s.client, call{method: http.MethodGet, path: path}, opts, "readiness")
}

// sandboxPath returns /sandboxes/{id}{suffix} with id escaped.
func sandboxPath(id, suffix string) (string, error) {
	escaped, err := pathID("sandbox", id)
	if err != nil {
		return "", err
	}
	return "/sandboxes/" + escaped + suffix, nil
}
