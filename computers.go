package miosa

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// ComputerStatus is the lifecycle state of a computer or sandbox. The set is
// open: a status this SDK does not know is kept as the server sent it.
type ComputerStatus string

// Known computer statuses.
const (
	StatusCreating   ComputerStatus = "creating"
	StatusStarting   ComputerStatus = "starting"
	StatusRunning    ComputerStatus = "running"
	StatusStopping   ComputerStatus = "stopping"
	StatusStopped    ComputerStatus = "stopped"
	StatusError      ComputerStatus = "error"
	StatusDestroying ComputerStatus = "destroying"
	StatusDestroyed  ComputerStatus = "destroyed"
)

// Computer is a machine: a full desktop, or a sandbox (see Sandbox).
type Computer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Slug string `json:"slug"`
	// Status and TemplateType come from "status" and "template_type", or,
	// when those are absent, from "state" and "template_id", as the native
	// sandbox routes (/sandboxes/{id}/...) name them.
	Status       ComputerStatus `json:"status"`
	TemplateType string         `json:"template_type"`
	Size         string         `json:"size"`
	IPAddress    string         `json:"ip_address"`
	VNCURL       string         `json:"vnc_url"`
	// Visibility is who may reach the machine: "public", "tenant" or "key"
	// (an open set).
	Visibility  string         `json:"visibility"`
	TenantID    string         `json:"tenant_id"`
	WorkspaceID string         `json:"workspace_id"`
	Metadata    map[string]any `json:"metadata"`
	// The external_* fields attribute the machine to your own workspace,
	// user and project. They are labels only; they never authorize.
	ExternalWorkspaceID string `json:"external_workspace_id"`
	ExternalUserID      string `json:"external_user_id"`
	ExternalProjectID   string `json:"external_project_id"`
	// Tags, AlwaysOn, Timeout and IdleTimeout are what Sandboxes.Update
	// sets; servers send them for sandboxes. Tags that are not strings are
	// skipped (Raw keeps them).
	Tags     []string `json:"tags"`
	AlwaysOn bool     `json:"always_on"`
	// Timeout and IdleTimeout come from timeout_sec and idle_timeout_sec;
	// zero when the server sent none.
	Timeout     time.Duration `json:"-"`
	IdleTimeout time.Duration `json:"-"`
	CreatedAt   time.Time     `json:"created_at"`
	UpdatedAt   time.Time     `json:"updated_at"`
	// Raw is the object exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a computer, tolerating empty or numeric timestamps,
// and keeps a copy of the raw object in Raw. An object without an id is not
// a computer: it is an error, so an answer that describes no machine never
// passes for one.
func (c *Computer) UnmarshalJSON(data []byte) error {
	if err := c.decodeOwned(data); err != nil {
		return err
	}
	c.Raw = bytes.Clone(c.Raw)
	return nil
}

// decodeOwned is UnmarshalJSON for data that nobody will reuse (an answer
// body the call owns): Raw is data itself, not a copy.
func (c *Computer) decodeOwned(data []byte) error {
	var w computerWire
	if err := decodeResource(data, &w, &w.ID); err != nil {
		return err
	}
	c.fromWire(&w, data)
	return nil
}

// computerEnvelopeKeys are the keys that may wrap a computer in an answer,
// besides "data" and "result" (a sandbox's calls name them the other way
// round, preferring "sandbox"); computerWire notes each of them that holds
// an object.
var computerEnvelopeKeys = []string{"computer", "sandbox"}

// decodeBare decodes body, a whole answer, as a bare computer, in one pass.
// It reports false, leaving c unset, when body instead holds one of the
// envelope keys wrapping an object (it is an envelope, to be unwrapped), when
// it does not decode, or when the call names envelope keys other than
// computerEnvelopeKeys (which computerWire could not have noted).
func (c *Computer) decodeBare(body []byte, envelopeKeys []string) bool {
	for _, key := range envelopeKeys {
		if !slices.Contains(computerEnvelopeKeys, key) {
			return false
		}
	}
	body = bytes.TrimSpace(body)
	var w computerWire
	if decodeResource(body, &w, &w.ID) != nil || w.Data || w.Result || w.Computer || w.Sandbox {
		return false
	}
	c.fromWire(&w, body)
	return true
}

// fromWire sets c from its decoded form and the object it was decoded from.
func (c *Computer) fromWire(w *computerWire, data []byte) {
	*c = Computer{
		ID: w.ID, Name: w.Name, Slug: w.Slug, Status: cmp.Or(w.Status, w.State),
		TemplateType: cmp.Or(w.TemplateType, w.TemplateID), Size: w.Size,
		IPAddress: w.IPAddress, VNCURL: w.VNCURL, Visibility: w.Visibility, TenantID: w.TenantID,
		WorkspaceID: w.WorkspaceID, Metadata: w.Metadata, ExternalWorkspaceID: w.ExternalWorkspaceID,
		ExternalUserID: w.ExternalUserID, ExternalProjectID: w.ExternalProjectID,
		Tags: stringItems(w.Tags), AlwaysOn: w.AlwaysOn,
		Timeout: time.Duration(w.TimeoutSec), IdleTimeout: time.Duration(w.IdleTimeoutSec),
		CreatedAt: w.CreatedAt.Time, UpdatedAt: w.UpdatedAt.Time,
		Raw: data,
	}
}

// computerWire is a computer as the server sends it, each field in a type
// that reads every form servers use. It is flat on purpose: encoding/json
// decodes a struct that embeds another (the usual "type plain Computer"
// shadowing) about 13% slower, which was a tenth of a call's cost.
type computerWire struct {
	ID                  string            `json:"id"`
	Name                string            `json:"name"`
	Slug                string            `json:"slug"`
	Status              ComputerStatus    `json:"status"`
	TemplateType        string            `json:"template_type"`
	State               ComputerStatus    `json:"state"`       // the native sandbox routes' status
	TemplateID          string            `json:"template_id"` // the native sandbox routes' template_type
	Size                string            `json:"size"`
	IPAddress           string            `json:"ip_address"`
	VNCURL              string            `json:"vnc_url"`
	Visibility          string            `json:"visibility"`
	TenantID            string            `json:"tenant_id"`
	WorkspaceID         string            `json:"workspace_id"`
	Metadata            map[string]any    `json:"metadata"`
	ExternalWorkspaceID string            `json:"external_workspace_id"`
	ExternalUserID      string            `json:"external_user_id"`
	ExternalProjectID   string            `json:"external_project_id"`
	Tags                []json.RawMessage `json:"tags"`
	AlwaysOn            bool              `json:"always_on"`
	TimeoutSec          wire.Seconds      `json:"timeout_sec"`
	IdleTimeoutSec      wire.Seconds      `json:"idle_timeout_sec"`
	CreatedAt           wire.Time         `json:"created_at"`
	UpdatedAt           wire.Time         `json:"updated_at"`
	// The envelope keys, noted only: one holding an object means the
	// answer decoded as a bare computer was an envelope (see decodeBare).
	Data     wire.IsObject `json:"data"`
	Result   wire.IsObject `json:"result"`
	Computer wire.IsObject `json:"computer"`
	Sandbox  wire.IsObject `json:"sandbox"`
}

// ComputerCreateParams describes a computer (or sandbox) to create. Every
// field is optional and sent only when set.
type ComputerCreateParams struct {
	Name string `json:"name,omitzero"`
	// TemplateType is the image; the server defaults to "miosa-desktop",
	// and Sandboxes.Create to DefaultSandboxTemplate.
	TemplateType string `json:"template_type,omitzero"`
	// Size is "small" (the server's default), "medium" or "large"; newer
	// servers also accept "xs" and "xl".
	Size                string         `json:"size,omitzero"`
	Metadata            map[string]any `json:"metadata,omitzero"`
	ExternalWorkspaceID string         `json:"external_workspace_id,omitzero"`
	ExternalUserID      string         `json:"external_user_id,omitzero"`
	ExternalProjectID   string         `json:"external_project_id,omitzero"`
}

// computerSizes are the sizes a server is known to accept.
var computerSizes = map[string]bool{"xs": true, "small": true, "medium": true, "large": true, "xl": true}

func (p ComputerCreateParams) validate() error {
	if p.Size != "" && !computerSizes[p.Size] {
		return fmt.Errorf("%w: size %q: want one of xs, small, medium, large, xl", ErrInvalidParams, p.Size)
	}
	return nil
}

// ComputerListParams filters and pages Computers.List. Zero fields are not
// sent.
type ComputerListParams struct {
	Status  ComputerStatus
	Page    int // 1-based
	PerPage int
}

func (p ComputerListParams) query() (url.Values, error) {
	if p.Page < 0 || p.PerPage < 0 {
		return nil, fmt.Errorf("%w: page and per-page must not be negative", ErrInvalidParams)
	}
	q := url.Values{}
	if p.Status != "" {
		q.Set("status", string(p.Status))
	}
	if p.Page > 0 {
		q.Set("page", strconv.Itoa(p.Page))
	}
	if p.PerPage > 0 {
		q.Set("per_page", strconv.Itoa(p.PerPage))
	}
	return q, nil
}

// ComputersService manages computers: POST/GET/DELETE /computers and the
// lifecycle actions. Sandboxes are computers too, so every method here also
// works on a sandbox id.
type ComputersService service

// Create asks the server to create a computer (POST /computers) and returns
// it, usually still "creating". The call carries an Idempotency-Key, reused on
// every retry, so it creates at most one computer.
func (s *ComputersService) Create(ctx context.Context, params ComputerCreateParams, opts ...Option) (*Computer, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	return sendForObject[Computer](ctx, s.client, call{
		method: http.MethodPost, path: "/computers", body: params, keyed: true,
	}, opts, computerEnvelopeKeys...)
}

// Get fetches one computer (GET /computers/{id}). An unknown id fails with
// an error matching ErrNotFound.
func (s *ComputersService) Get(ctx context.Context, id string, opts ...Option) (*Computer, error) {
	path, err := computerPath(id, "")
	if err != nil {
		return nil, err
	}
	return sendForObject[Computer](ctx, s.client, call{method: http.MethodGet, path: path}, opts, computerEnvelopeKeys...)
}

// List fetches one page of computers (GET /computers).
func (s *ComputersService) List(ctx context.Context, params ComputerListParams, opts ...Option) ([]Computer, error) {
	items, _, err := s.listPage(ctx, params, opts)
	return items, err
}

func (s *ComputersService) listPage(ctx context.Context, params ComputerListParams, opts []Option) ([]Computer, *wire.Meta, error) {
	q, err := params.query()
	if err != nil {
		return nil, nil, err
	}
	return sendForList[Computer](ctx, s.client, call{method: http.MethodGet, path: "/computers", query: q}, opts, "computers", "sandboxes")
}

// maxListPages bounds how many pages one Computers.All walk fetches, so a
// server that reports an ever-growing or absurd total cannot keep a loop
// going: at the largest page size a server is known to allow (500) it is five
// million computers.
const maxListPages = 10_000

// All lists every computer, fetching pages lazily (GET /computers, page after
// page) as the loop asks for more. It follows the server's "meta" block and
// stops after the last page, after an empty page, or after the first page
// when the server sends no meta. On failure, or when ctx ends, it yields one
// error and stops.
//
// The walk is bounded whatever the server claims. Progress is judged by the
// page asked for, not the one the meta names. A page that brings no computer
// the previous page did not already hold (a server that ignores "page") is
// not yielded again: the walk ends there, with an error unless as many
// computers as the meta's total have been yielded. After 10 000 pages the
// walk yields an error saying the server still reports more.
func (s *ComputersService) All(ctx context.Context, params ComputerListParams, opts ...Option) iter.Seq2[Computer, error] {
	return func(yield func(Computer, error) bool) {
		page := params // the caller's params are not modified
		page.Page = max(page.Page, 1)
		var previous map[string]bool // ids on the page before this one
		yielded := 0
		for fetched := 0; ; fetched++ {
			if err := ctx.Err(); err != nil {
				yield(Computer{}, fmt.Errorf("miosa: listing computers: %w", err))
				return
			}
			if fetched == maxListPages {
				yield(Computer{}, fmt.Errorf("miosa: listing computers: stopped after %d pages although the server reports more", maxListPages))
				return
			}
			items, meta, err := s.listPage(ctx, page, opts)
			if err != nil {
				yield(Computer{}, err)
				return
			}
			if len(items) > 0 && !bringsNew(items, previous) {
				if meta == nil || yielded < meta.Total {
					yield(Computer{}, fmt.Errorf("miosa: listing computers: page %d repeats page %d, so the server seems to ignore the page parameter; stopped after %d computers", page.Page, page.Page-1, yielded))
				}
				return
			}
			for _, c := range items {
				if !yield(c, nil) {
					return
				}
				yielded++
			}
			if meta == nil || len(items) == 0 || !(wire.Meta{Total: meta.Total, Page: page.Page, PerPage: meta.PerPage}).HasMore() {
				return
			}
			previous = make(map[string]bool, len(items))
			for _, c := range items {
				previous[c.ID] = true
			}
			page.Page++
		}
	}
}

// bringsNew reports whether some item's id is not in seen.
func bringsNew(items []Computer, seen map[string]bool) bool {
	for _, c := range items {
		if !seen[c.ID] {
			return true
		}
	}
	return false
}

// Delete deletes a computer (DELETE /computers/{id}). The server may refuse
// to delete a running computer; Destroy stops it first. Like every DELETE it
// is retried; a 404 to a retry counts as done, since the attempt whose
// answer was lost may have deleted it.
func (s *ComputersService) Delete(ctx context.Context, id string, opts ...Option) error {
	return s.delete(ctx, id, nil, opts)
}

// Destroy stops and deletes a computer in one call
// (DELETE /computers/{id}?force=true). It is retried as Delete is.
func (s *ComputersService) Destroy(ctx context.Context, id string, opts ...Option) error {
	return s.delete(ctx, id, url.Values{"force": {"true"}}, opts)
}

func (s *ComputersService) delete(ctx context.Context, id string, q url.Values, opts []Option) error {
	path, err := computerPath(id, "")
	if err != nil {
		return err
	}
	_, err = s.client.send(ctx, call{method: http.MethodDelete, path: path, query: q, goneIsDone: true}, opts)
	return err
}

// Start boots a stopped computer (POST /computers/{id}/start). It returns
// once the server accepted the request; use WaitForStatus to wait for
// "running". It is not retried once it may have reached the server.
func (s *ComputersService) Start(ctx context.Context, id string, opts ...Option) error {
	return s.action(ctx, id, "start", opts)
}

// Stop shuts a computer down (POST /computers/{id}/stop). It returns once the
// server accepted the request. It is not retried once it may have reached the
// server.
func (s *ComputersService) Stop(ctx context.Context, id string, opts ...Option) error {
	return s.action(ctx, id, "stop", opts)
}

// Restart reboots a computer (POST /computers/{id}/restart). It returns once
// the server accepted the request. It is not retried once it may have
// reached the server.
func (s *ComputersService) Restart(ctx context.Context, id string, opts ...Option) error {
	return s.action(ctx, id, "restart", opts)
}

func (s *ComputersService) action(ctx context.Context, id, action string, opts []Option) error {
	path, err := computerPath(id, "/"+action)
	if err != nil {
		return err
	}
	_, err = s.client.send(ctx, call{method: http.MethodPost, path: path}, opts)
	return err
}

const (
	defaultStatusTimeout  = 5 * time.Minute
	defaultStatusInterval = 2 * time.Second
)

// WaitForStatus polls GET /computers/{id} (every 2 s by default) until the
// computer reaches want, and returns it. It sends only reads, each tried
// once per poll. The wait ends:
//   - with the computer and a nil error when it reaches want;
//   - at the first poll that shows it cannot get there any more, with a
//     *MachineStateError: the computer is in state "error" (unless want is
//     "error", "destroying" or "destroyed"), being destroyed or destroyed
//     (unless want is "destroyed"), or gone (a 404; the error then matches
//     ErrNotFound);
//   - with an error matching ErrWaitTimeout when WaitOptions.Timeout
//     (default 5 min) passes;
//   - at once on another permanent API error (such as 401 or 403);
//   - with the context's error when ctx ends.
//
// Transient errors (429, 5xx, network) do not end the wait; a Retry-After
// longer than the interval is honoured. The computer last seen is returned
// with every error after the first successful poll.
func (s *ComputersService) WaitForStatus(ctx context.Context, id string, want ComputerStatus, wait WaitOptions, opts ...Option) (*Computer, error) {
	if _, err := computerPath(id, ""); err != nil {
		return nil, err
	}
	if want == "" {
		return nil, fmt.Errorf("%w: the status to wait for is empty", ErrInvalidParams)
	}
	target := machineTarget{kind: "computer", id: id, want: want, wantText: strconv.Quote(string(want))}
	p, err := wait.poller(s.client, "computer "+id+" to be "+target.wantText, defaultStatusTimeout, defaultStatusInterval, opts)
	if err != nil {
		return nil, err
	}
	var last *Computer
	err = p.run(ctx, func(ctx context.Context) (bool, error) {
		c, err := s.Get(ctx, id, p.opts...)
		if err != nil {
			return false, target.gone(err)
		}
		last = c
		if err := target.unreachable(c.Status); err != nil {
			return false, err
		}
		return c.Status == want, nil
	})
	if errors.Is(err, errLocalTimeout) {
		state := "its state is unknown"
		if last != nil {
			state = fmt.Sprintf("it is %q", last.Status)
		}
		err = p.timedOut(state)
	}
	return last, err
}

// computerPath returns /computers/{id}{suffix} with id escaped.
func computerPath(id, suffix string) (string, error) {
	escaped, err := pathID("computer", id)
	if err != nil {
		return "", err
	}
	return "/computers/" + escaped + suffix, nil
}
