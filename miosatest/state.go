package miosatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Machine statuses, as the API names them.
const (
	statusCreating = "creating"
	statusStarting = "starting"
	statusRunning  = "running"
	statusStopped  = "stopped"
	statusError    = "error"
	statusPaused   = "paused"
)

// Template types the API knows.
const (
	templateDesktop = "miosa-desktop"
	templateSandbox = "miosa-sandbox"
)

// machine is a computer or sandbox. Fields are guarded by engine.mu.
type machine struct {
	seq                 int
	id                  string
	name, slug          string
	status              string
	templateType        string
	size                string
	metadata            map[string]any
	tags                []string
	alwaysOn            bool
	timeoutSec          int
	idleTimeoutSec      int
	externalWorkspaceID string
	externalUserID      string
	externalProjectID   string
	forkedFrom          string
	snapshotID          string
	createdAt           time.Time
	updatedAt           time.Time
	readyAt             time.Time
	// bootDue is when a boot in progress makes the machine running.
	bootDue time.Time
	// ready is closed when the machine next becomes running; a machine
	// that leaves "running" gets a new, open channel.
	ready chan struct{}
	// gen counts transitions, so a scheduled boot that a stop overtook
	// does nothing when its timer fires.
	gen int
	// commands is the context of the commands running on the machine, made
	// by the first one (commandContext) and ended by endCommands when the
	// machine leaves "running".
	commands    context.Context
	endCommands context.CancelFunc
}

// machineView is a machine as the API sends it.
type machineView struct {
	ID                  string         `json:"id"`
	Name                string         `json:"name"`
	Slug                string         `json:"slug"`
	Status              string         `json:"status,omitempty"`
	TemplateType        string         `json:"template_type,omitempty"`
	State               string         `json:"state,omitempty"`       // the native routes' status
	TemplateID          string         `json:"template_id,omitempty"` // the native routes' template_type
	Size                string         `json:"size"`
	IPAddress           string         `json:"ip_address"`
	VNCURL              string         `json:"vnc_url"`
	Visibility          string         `json:"visibility"`
	TenantID            string         `json:"tenant_id"`
	WorkspaceID         string         `json:"workspace_id"`
	Metadata            map[string]any `json:"metadata"`
	Tags                []string       `json:"tags"`
	AlwaysOn            bool           `json:"always_on"`
	TimeoutSec          int            `json:"timeout_sec"`
	IdleTimeoutSec      int            `json:"idle_timeout_sec"`
	ExternalWorkspaceID string         `json:"external_workspace_id,omitempty"`
	ExternalUserID      string         `json:"external_user_id,omitempty"`
	ExternalProjectID   string         `json:"external_project_id,omitempty"`
	ForkedFrom          string         `json:"forked_from,omitempty"`
	SnapshotID          string         `json:"snapshot_id,omitempty"`
	CreatedAt           string         `json:"created_at"`
	UpdatedAt           string         `json:"updated_at"`
}

const (
	fakeTenant    = "tnt_miosatest"
	fakeWorkspace = "ws_miosatest"
)

// view copies m into its wire form; the caller holds engine.mu.
func (m *machine) view() machineView {
	v := machineView{
		ID: m.id, Name: m.name, Slug: m.slug, Status: m.status,
		TemplateType: m.templateType, Size: m.size,
		Visibility: "tenant", TenantID: fakeTenant, WorkspaceID: fakeWorkspace,
		Metadata: cloneMap(m.metadata), Tags: append([]string{}, m.tags...),
		AlwaysOn: m.alwaysOn, TimeoutSec: m.timeoutSec, IdleTimeoutSec: m.idleTimeoutSec,
		ExternalWorkspaceID: m.externalWorkspaceID, ExternalUserID: m.externalUserID,
		ExternalProjectID: m.externalProjectID, ForkedFrom: m.forkedFrom, SnapshotID: m.snapshotID,
		CreatedAt: timeString(m.createdAt), UpdatedAt: timeString(m.updatedAt),
	}
	if v.Metadata == nil {
		v.Metadata = map[string]any{}
	}
	if m.status == statusRunning {
		v.IPAddress = fmt.Sprintf("10.0.%d.%d", (m.seq/250)%250, m.seq%250+2)
		if m.templateType != templateSandbox {
			// .invalid never resolves: nothing can mistake it for a real host.
			v.VNCURL = "https://" + m.id + ".vnc.miosa.invalid/"
		}
	}
	return v
}

// newID returns prefix + 16 random hex digits.
func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// addMachine stores a new machine in "creating" and schedules its boot; the
// caller holds engine.mu.
func (e *engine) addMachine(m *machine) {
	e.seq++
	now := e.now()
	m.seq, m.id = e.seq, newID("cmp_")
	m.createdAt, m.updatedAt = now, now
	if m.name == "" {
		m.name = fmt.Sprintf("%s-%d", strings.TrimPrefix(m.templateType, "miosa-"), m.seq)
	}
	if m.slug == "" {
		m.slug = slugify(m.name) + "-" + m.id[len(m.id)-6:]
	}
	m.ready = make(chan struct{})
	e.machines[m.id] = m
	e.boot(m, statusCreating)
}

// boot puts m in the given transitional status and makes it running after
// the boot delay; the caller holds engine.mu.
func (e *engine) boot(m *machine, via string) {
	m.gen++
	gen := m.gen
	e.setStatus(m, via)
	m.bootDue = e.now().Add(e.cfg.BootDelay)
	e.after(e.cfg.BootDelay, func() {
		if e.machines[m.id] == m && m.gen == gen {
			e.setStatus(m, statusRunning)
		}
	})
}

// setStatus moves m to status, keeping its ready channel in step: closed
// while running, open otherwise. The caller holds engine.mu.
func (e *engine) setStatus(m *machine, status string) {
	if m.status == status {
		return
	}
	wasRunning := m.status == statusRunning
	m.status = status
	m.updatedAt = e.now()
	switch {
	case status == statusRunning:
		m.readyAt = m.updatedAt
		close(m.ready)
	case wasRunning:
		m.ready = make(chan struct{})
		m.readyAt = time.Time{}
		e.endCommands(m)
	}
}

// stepThrough calls step with each of steps in turn and then finish, one
// BuildStepDelay apart, starting one BuildStepDelay from now: the pace of
// builds and snapshots. The caller holds engine.mu; so do step and finish.
func (e *engine) stepThrough(steps []string, step func(string), finish func()) {
	e.after(e.cfg.BuildStepDelay, func() {
		if len(steps) == 0 {
			finish()
			return
		}
		step(steps[0])
		e.stepThrough(steps[1:], step, finish)
	})
}

// stop moves m to "stopped" at once, overtaking a boot in progress; its
// commands and background processes end with it (setStatus).
func (e *engine) stop(m *machine) {
	m.gen++
	e.setStatus(m, statusStopped)
}

var slugUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

func slugify(name string) string {
	s := strings.Trim(slugUnsafe.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if s == "" {
		s = "machine"
	}
	return s
}

// cloneMap copies a JSON object one level deep, so a view handed out cannot
// alias the stored state.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// copySettings returns a new machine with m's settings (name, template,
// size, labels, timeouts), as a fork or a restore of m starts out; the
// caller holds engine.mu.
func (m *machine) copySettings() *machine {
	return &machine{
		name: m.name, templateType: m.templateType, size: m.size,
		metadata: cloneMap(m.metadata), tags: slices.Clone(m.tags),
		alwaysOn: m.alwaysOn, timeoutSec: m.timeoutSec, idleTimeoutSec: m.idleTimeoutSec,
		externalWorkspaceID: m.externalWorkspaceID, externalUserID: m.externalUserID,
		externalProjectID: m.externalProjectID,
	}
}

// SetStatus puts a machine in any status at once, overtaking a boot in
// progress, so tests can reach states such as "error" that the API reaches
// on its own. It fails for an unknown id.
func (e *engine) SetStatus(id, status string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.machines[id]
	if m == nil {
		return fmt.Errorf("computer %q not found", id)
	}
	m.gen++
	e.setStatus(m, status)
	return nil
}

// Status returns a machine's status, and false for an unknown id.
func (e *engine) Status(id string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.machines[id]
	if m == nil {
		return "", false
	}
	return m.status, true
}

// failQueue is what the next operations of a kind (builds, snapshots) must
// fail with: runs of a reason, each as many times as FailBuilds or
// FailSnapshots asked, held as counts however large. Its owner guards it.
type failQueue struct {
	runs []failRun
}

type failRun struct {
	left   int
	reason string
}

// add makes the next n operations after those already queued fail with
// reason.
func (q *failQueue) add(n int, reason string) {
	if n > 0 {
		q.runs = append(q.runs, failRun{left: n, reason: reason})
	}
}

// next takes the reason the next operation must fail with, if any.
func (q *failQueue) next() (string, bool) {
	if len(q.runs) == 0 {
		return "", false
	}
	run := &q.runs[0]
	reason := run.reason
	if run.left--; run.left == 0 {
		q.runs = q.runs[1:]
	}
	return reason, true
}
