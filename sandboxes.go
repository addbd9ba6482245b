package miosa

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
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

// List returns the caller's sandboxes: it lists computers (GET /computers,
// the server's first page) and keeps those whose template_type is
// DefaultSandboxTemplate, because the server has no sandbox filter of its
// own. To walk every page, filter Computers.All the same way.
func (s *SandboxesService) List(ctx context.Context, opts ...Option) ([]Sandbox, error) {
	computers, err := s.client.Computers.List(ctx, ComputerListParams{}, opts...)
	if err != nil {
		return nil, err
	}
	sandboxes := []Sandbox{}
	for _, c := range computers {
		if c.TemplateType == DefaultSandboxTemplate {
			sandboxes = append(sandboxes, c)
		}
	}
	return sandboxes, nil
}

// Delete deletes a sandbox (DELETE /computers/{id}). Like Computers.Delete it
// does not force: use Computers.Destroy to stop and delete in one call.
func (s *SandboxesService) Delete(ctx context.Context, id string, opts ...Option) error {
	if _, err := pathID("sandbox", id); err != nil {
		return err
	}
	return s.client.Computers.Delete(ctx, id, opts...)
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
	return decodeObject[Sandbox](ctx, s.client, call{
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
	return decodeObject[Sandbox](ctx, s.client, call{method: http.MethodPatch, path: path, body: body}, opts, "sandbox", "computer")
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
	return decodeObject[PreviewToken](ctx, s.client, call{method: http.MethodPost, path: path, body: body}, opts, "preview_token", "preview")
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
		Ready:   bytes.Equal(bytes.TrimSpace(v.Ready), []byte("true")) || status == "ready",
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
	return decodeObject[Readiness](ctx, s.client, call{method: http.MethodGet, path: path}, opts, "readiness")
}

// sandboxPath returns /sandboxes/{id}{suffix} with id escaped.
func sandboxPath(id, suffix string) (string, error) {
	escaped, err := pathID("sandbox", id)
	if err != nil {
		return "", err
	}
	return "/sandboxes/" + escaped + suffix, nil
}
