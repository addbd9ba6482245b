package miosa

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/miosa-ai/miosa-go/internal/wire"
)

// BuildSpec describes how a sandbox template's image is built, as a JSON
// object, for example {"runtime": "node", "version": "20", "packages":
// ["curl"]}. Its schema belongs to the server: BuildSpecSchema returns it and
// Validate checks a spec against it.
type BuildSpec map[string]any

// SandboxTemplate is a reusable sandbox image definition: a named build spec
// and, once built, the image it produced.
type SandboxTemplate struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	BuildSpec   BuildSpec `json:"build_spec"`
	// Status is the template's state as the server names it ("status", or
	// "state" on newer servers); the set is not documented, so it is kept as
	// sent.
	Status   string         `json:"status"`
	ImageRef string         `json:"image_ref"`
	Aliases  []string       `json:"aliases"`
	Metadata map[string]any `json:"metadata"`
	// CreatedAt and UpdatedAt are zero when the server did not send them.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Raw is the object exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a template, reading its state from "status" or, as
// newer servers name it, "state", tolerating empty or numeric timestamps
// and aliases that are not strings (they are skipped; Raw keeps them), and
// keeps the raw object in Raw. An object without an id is an error.
func (t *SandboxTemplate) UnmarshalJSON(data []byte) error {
	type plain SandboxTemplate
	var v struct {
		plain
		State     string            `json:"state"`
		Aliases   []json.RawMessage `json:"aliases"`
		CreatedAt wire.Time         `json:"created_at"`
		UpdatedAt wire.Time         `json:"updated_at"`
	}
	if err := decodeResource(data, &v, &v.ID); err != nil {
		return err
	}
	*t = SandboxTemplate(v.plain)
	t.Status = cmp.Or(t.Status, v.State)
	t.Aliases = stringItems(v.Aliases)
	t.CreatedAt, t.UpdatedAt = v.CreatedAt.Time, v.UpdatedAt.Time
	t.Raw = append(json.RawMessage(nil), data...)
	return nil
}

// Known template build states. TemplateBuild.Status is an open string: a
// state not listed here is kept as the server sent it, and WaitForBuild keeps
// waiting through it. Servers disagree on the name of success: newer ones
// say "ready", older ones "succeeded"; both mean the image is usable.
const (
	BuildStatusQueued       = "queued"       // waiting for a builder
	BuildStatusBuilding     = "building"     // in progress
	BuildStatusCertifying   = "certifying"   // in progress: the image is being checked
	BuildStatusSnapshotting = "snapshotting" // in progress: the image is being saved
	BuildStatusReady        = "ready"        // finished: the image is usable
	BuildStatusSucceeded    = "succeeded"    // finished: the image is usable
	BuildStatusFailed       = "failed"       // finished without an image; see TemplateBuild.Error
	BuildStatusError        = "error"        // finished without an image; see TemplateBuild.Error
	BuildStatusCancelled    = "cancelled"    // finished without an image
)

// finishedBuildStates is the one list of states that end a build, each
// mapped to whether the build produced its image. States are compared in
// lower case; "canceled" is the American spelling of BuildStatusCancelled,
// accepted so that neither spelling leaves a wait running until its timeout.
var finishedBuildStates = map[string]bool{
	BuildStatusReady:     true,
	BuildStatusSucceeded: true,
	BuildStatusFailed:    false,
	BuildStatusError:     false,
	BuildStatusCancelled: false,
	"canceled":           false,
}

// TemplateBuild is one run of a template's build.
//
// Servers name some of its fields in two ways, and both are read: the state
// comes as "status" or "state", the template as "template_id" or
// "sandbox_template_id", the explanation of a failure as "error" or
// "error_message" (with "error_code").
type TemplateBuild struct {
	ID         string `json:"id"`
	TemplateID string `json:"template_id"`
	// Status is the build's state: one of the BuildStatus constants or a
	// state this SDK does not know, kept as sent.
	Status string `json:"status"`
	LogURL string `json:"log_url"`
	// Error is the server's explanation of a failed build; empty otherwise.
	Error string `json:"error"`
	// ErrorCode is the server's code for the failure (e.g. "BUILD_FAILED"),
	// when it sends one.
	ErrorCode string `json:"error_code"`
	// The timestamps are zero when the server did not send them (a build
	// that has not started or finished yet).
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	CreatedAt  time.Time `json:"created_at"`
	// Raw is the object exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// stringItems returns the non-empty strings of a JSON list whose items the
// server may not have kept to strings; the others are skipped.
func stringItems(items []json.RawMessage) []string {
	var out []string
	for _, item := range items {
		if s := jsonString(item); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// UnmarshalJSON decodes a build under either naming of its fields,
// tolerating empty or numeric timestamps and an error given as an object
// with a "message" instead of a string, and keeps the raw object in Raw. An
// object without an id is an error.
func (b *TemplateBuild) UnmarshalJSON(data []byte) error {
	type plain TemplateBuild
	var v struct {
		plain
		State             string          `json:"state"`
		SandboxTemplateID string          `json:"sandbox_template_id"`
		Error             json.RawMessage `json:"error"`
		ErrorMessage      json.RawMessage `json:"error_message"`
		StartedAt         wire.Time       `json:"started_at"`
		FinishedAt        wire.Time       `json:"finished_at"`
		CreatedAt         wire.Time       `json:"created_at"`
	}
	if err := decodeResource(data, &v, &v.ID); err != nil {
		return err
	}
	*b = TemplateBuild(v.plain)
	b.Status = cmp.Or(b.Status, v.State)
	b.TemplateID = cmp.Or(b.TemplateID, v.SandboxTemplateID)
	b.Error = cmp.Or(messageOf(v.Error), messageOf(v.ErrorMessage))
	b.StartedAt, b.FinishedAt, b.CreatedAt = v.StartedAt.Time, v.FinishedAt.Time, v.CreatedAt.Time
	b.Raw = append(json.RawMessage(nil), data...)
	return nil
}

// Finished reports whether the build has ended, successfully or not. A state
// this SDK does not know counts as not finished.
func (b *TemplateBuild) Finished() bool {
	_, ok := finishedBuildStates[strings.ToLower(b.Status)]
	return ok
}

// Succeeded reports whether the build has ended with a usable image.
func (b *TemplateBuild) Succeeded() bool {
	return finishedBuildStates[strings.ToLower(b.Status)]
}

// BuildFailedError is returned by WaitForBuild when the build ends without an
// image (failed, error or cancelled). Build holds the build as last seen,
// with the server's explanation in Build.Error.
type BuildFailedError struct {
	// TemplateID is the template whose build failed.
	TemplateID string
	// Build is the failed build; Build.Error and Build.LogURL say why.
	Build *TemplateBuild
}

// Error formats the failure as
// `miosa: template tpl_1: build bld_1 ended "failed": npm install exited 1`,
// with the server's error code after the state when it sent one.
func (e *BuildFailedError) Error() string {
	if e.Build == nil {
		return fmt.Sprintf("miosa: template %s: build failed", e.TemplateID)
	}
	msg := fmt.Sprintf("miosa: template %s: build %s ended %q", e.TemplateID, e.Build.ID, e.Build.Status)
	if code := capText(e.Build.ErrorCode, maxErrorMessage); code != "" {
		msg += " " + code
	}
	if text := capText(strings.TrimSpace(e.Build.Error), maxErrorMessage); text != "" {
		msg += ": " + text
	}
	return msg
}

// ValidationResult is the server's verdict on a build spec.
type ValidationResult struct {
	// Valid is the server's "valid" field; when it sent none, a spec is valid
	// exactly when no errors came back.
	Valid bool `json:"valid"`
	// Errors are the server's messages, one per problem found.
	Errors []string `json:"errors"`
	// BuildSpec is the normalized spec the server sent back, if any: its
	// "build_spec" field, or the whole answer when that is a bare spec (no
	// "valid", "errors" or "build_spec" field).
	BuildSpec BuildSpec `json:"build_spec"`
	// Raw is the verdict exactly as the server sent it.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes a verdict. The errors may arrive as strings, as
// objects carrying a "message" (or "detail"), as one string, or as an object
// mapping a field to its messages; none of these breaks decoding.
func (r *ValidationResult) UnmarshalJSON(data []byte) error {
	var v struct {
		Valid     *bool           `json:"valid"`
		Errors    json.RawMessage `json:"errors"`
		BuildSpec json.RawMessage `json:"build_spec"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	var res ValidationResult
	res.Errors = messagesOf(v.Errors)
	res.Valid = len(res.Errors) == 0
	if v.Valid != nil {
		res.Valid = *v.Valid
	}
	spec := v.BuildSpec
	if spec == nil && v.Valid == nil && v.Errors == nil {
		spec = data
	}
	if isJSONObject(spec) {
		if err := json.Unmarshal(spec, &res.BuildSpec); err != nil {
			return fmt.Errorf("build_spec: %w", err)
		}
	}
	res.Raw = append(json.RawMessage(nil), data...)
	*r = res
	return nil
}

// SandboxTemplateListParams filters SandboxTemplates.List.
type SandboxTemplateListParams struct {
	// IncludeAliases asks the server to list alias templates too.
	IncludeAliases bool
}

// SandboxTemplateCreateParams describes a template to create.
type SandboxTemplateCreateParams struct {
	// Name names the template. Required.
	Name string `json:"name"`
	// BuildSpec says how to build its image. Required (non-nil).
	BuildSpec   BuildSpec      `json:"build_spec"`
	Description string         `json:"description,omitzero"`
	Metadata    map[string]any `json:"metadata,omitzero"`
}

func (p SandboxTemplateCreateParams) validate() error {
	switch {
	case strings.TrimSpace(p.Name) == "":
		return fmt.Errorf("%w: a sandbox template needs a Name", ErrInvalidParams)
	case p.BuildSpec == nil:
		return fmt.Errorf("%w: sandbox template %q needs a BuildSpec (see BuildSpecSchema)", ErrInvalidParams, p.Name)
	}
	return nil
}

// TemplateBuildCreateParams holds optional build-time overrides for
// SandboxTemplates.CreateBuild. The zero value builds the template as it is
// defined.
type TemplateBuildCreateParams struct {
	// BuildSpec, when non-empty, replaces the template's spec for this
	// build. An empty spec is not sent: it would override nothing.
	BuildSpec BuildSpec `json:"build_spec,omitempty"`
}

// SandboxTemplatesService defines and builds reusable sandbox images:
// /sandbox-templates and its builds.
type SandboxTemplatesService service

// List fetches the tenant's sandbox templates (GET /sandbox-templates), with
// alias templates too when params.IncludeAliases is set.
func (s *SandboxTemplatesService) List(ctx context.Context, params SandboxTemplateListParams, opts ...Option) ([]SandboxTemplate, error) {
	var q url.Values
	if params.IncludeAliases {
		q = url.Values{"include_aliases": {"true"}}
	}
	items, _, err := sendForList[SandboxTemplate](ctx, s.client, call{
		method: http.MethodGet, path: "/sandbox-templates", query: q,
	}, opts, "templates", "sandbox_templates")
	return items, err
}

// Get fetches one template (GET /sandbox-templates/{id}). An unknown id fails
// with an error matching ErrNotFound.
func (s *SandboxTemplatesService) Get(ctx context.Context, id string, opts ...Option) (*SandboxTemplate, error) {
	path, err := templatePath(id, "")
	if err != nil {
		return nil, err
	}
	return sendForObject[SandboxTemplate](ctx, s.client, call{method: http.MethodGet, path: path}, opts,
		"template", "sandbox_template")
}

// Create asks the server to define a template (POST /sandbox-templates) and
// returns it. Name and a non-nil BuildSpec are required; nothing is sent
// without them. The call carries an Idempotency-Key, reused on every retry,
// so it defines at most one template. Building the image is a separate step:
// see CreateBuild.
func (s *SandboxTemplatesService) Create(ctx context.Context, params SandboxTemplateCreateParams, opts ...Option) (*SandboxTemplate, error) {
	if err := params.validate(); err != nil {
		return nil, err
	}
	return sendForObject[SandboxTemplate](ctx, s.client, call{
		method: http.MethodPost, path: "/sandbox-templates", body: params, keyed: true,
	}, opts, "template", "sandbox_template")
}

// BuildSpecSchema fetches the JSON Schema that build specs must follow
// (GET /sandbox-templates/build-spec) and returns the response body exactly
// as the server sent it, envelope included if the server used one. It fails
// when the body is empty or not JSON.
func (s *SandboxTemplatesService) BuildSpecSchema(ctx context.Context, opts ...Option) (json.RawMessage, error) {
	op := call{method: http.MethodGet, path: "/sandbox-templates/build-spec"}
	res, err := s.client.send(ctx, op, opts)
	if err != nil {
		return nil, err
	}
	if !json.Valid(res.body) {
		return nil, fmt.Errorf("miosa: %s %s: decoding the response: %w", op.method, op.path, wire.ErrNotJSON)
	}
	return json.RawMessage(res.body), nil
}

// Validate asks the server to check a build spec without creating anything
// (POST /sandbox-templates/validate, body {"build_spec": spec}). An invalid
// spec is a result, not a Go error: Valid is false and Errors holds the
// server's messages, whether the server answered 200 or 422. A 422 that
// carries no error messages, and every other failure, is returned as an
// error. It changes nothing on the server, so it is retried like a GET.
func (s *SandboxTemplatesService) Validate(ctx context.Context, spec BuildSpec, opts ...Option) (*ValidationResult, error) {
	if spec == nil {
		return nil, fmt.Errorf("%w: the build spec to validate is nil", ErrInvalidParams)
	}
	body := struct {
		BuildSpec BuildSpec `json:"build_spec"`
	}{spec}
	res, err := sendForObject[ValidationResult](ctx, s.client, call{
		method: http.MethodPost, path: "/sandbox-templates/validate", body: body, idempotent: true,
	}, opts, "validation")
	if verdict, ok := rejectedSpec(err); ok {
		return verdict, nil
	}
	return res, err
}

// rejectedSpec turns a 422 whose body lists what is wrong with the spec into
// the verdict it carries. The pipeline has already parsed the answer into an
// *APIError; its capped Body is read again only for the list of messages.
func rejectedSpec(err error) (*ValidationResult, bool) {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnprocessableEntity {
		return nil, false
	}
	raw, err := wire.Object(apiErr.Body, "validation")
	if err != nil || raw == nil {
		return nil, false
	}
	var verdict ValidationResult
	if json.Unmarshal(raw, &verdict) != nil || len(verdict.Errors) == 0 {
		return nil, false
	}
	verdict.Valid = false
	return &verdict, true
}

// ListBuilds fetches a template's builds
// (GET /sandbox-templates/{id}/builds).
func (s *SandboxTemplatesService) ListBuilds(ctx context.Context, templateID string, opts ...Option) ([]TemplateBuild, error) {
	path, err := templatePath(templateID, "/builds")
	if err != nil {
		return nil, err
	}
	items, _, err := sendForList[TemplateBuild](ctx, s.client, call{method: http.MethodGet, path: path}, opts, "builds")
	return items, err
}

// CreateBuild starts a build of a template's image
// (POST /sandbox-templates/{id}/builds) and returns the build, usually not
// finished yet; WaitForBuild waits for it. The body carries params'
// overrides, or is {} when there are none. The call carries an
// Idempotency-Key, reused on every retry, so it starts at most one build.
func (s *SandboxTemplatesService) CreateBuild(ctx context.Context, templateID string, params TemplateBuildCreateParams, opts ...Option) (*TemplateBuild, error) {
	path, err := templatePath(templateID, "/builds")
	if err != nil {
		return nil, err
	}
	return sendForObject[TemplateBuild](ctx, s.client, call{
		method: http.MethodPost, path: path, body: params, keyed: true,
	}, opts, "build")
}

const (
	defaultBuildTimeout  = 5 * time.Minute
	defaultBuildInterval = 2 * time.Second
)

// WaitForBuild polls GET /sandbox-templates/{id}/builds (every 2 s by
// default) until build buildID finishes, and returns it. A build that ends
// with an image (ready, succeeded) is returned with a nil error; one that
// ends without (failed, error, cancelled) is returned with a
// *BuildFailedError carrying the server's explanation. A build missing from
// the list, or in a state this SDK does not know, keeps the wait going: a
// build just created may not be listed yet. The wait fails with an error
// matching ErrWaitTimeout when WaitOptions.Timeout (default 5 min) passes,
// at once on a permanent API error (such as 401, 403 or 404), and with the
// context's error when ctx ends; transient errors (429, 5xx, network) do not
// end it. WaitOptions.PollOnly has no effect here.
func (s *SandboxTemplatesService) WaitForBuild(ctx context.Context, templateID, buildID string, wait WaitOptions, opts ...Option) (*TemplateBuild, error) {
	if _, err := templatePath(templateID, ""); err != nil {
		return nil, err
	}
	if _, err := pathID("build", buildID); err != nil {
		return nil, err
	}
	p, err := wait.poller(s.client, "build "+buildID+" of template "+templateID, defaultBuildTimeout, defaultBuildInterval, opts)
	if err != nil {
		return nil, err
	}
	var last *TemplateBuild
	err = p.run(ctx, func(ctx context.Context) (bool, error) {
		builds, err := s.ListBuilds(ctx, templateID, p.opts...)
		if err != nil {
			return false, err
		}
		i := slices.IndexFunc(builds, func(b TemplateBuild) bool { return b.ID == buildID })
		if i < 0 {
			return false, nil
		}
		last = &builds[i]
		if last.Finished() && !last.Succeeded() {
			return false, &BuildFailedError{TemplateID: templateID, Build: last}
		}
		return last.Finished(), nil
	})
	if errors.Is(err, errLocalTimeout) {
		state := "it is not listed"
		if last != nil {
			state = fmt.Sprintf("it is %q", last.Status)
		}
		err = p.timedOut(state)
	}
	return last, err
}

// reservedTemplateSegments name endpoints that sit where a template id
// would: GET /sandbox-templates/build-spec is the schema, not a template.
var reservedTemplateSegments = []string{"build-spec", "validate"}

// templatePath returns /sandbox-templates/{id}{suffix} with id escaped.
func templatePath(id, suffix string) (string, error) {
	escaped, err := pathID("template", id)
	if err != nil {
		return "", err
	}
	if slices.Contains(reservedTemplateSegments, id) {
		return "", fmt.Errorf("%w: %q names an endpoint, not a template id", ErrInvalidParams, id)
	}
	return "/sandbox-templates/" + escaped + suffix, nil
}
