package miosa

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPollUntil_HonoursALongerRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		start := time.Now()
		err := pollUntil(t.Context(), time.Second, func(ctx context.Context) (bool, error) {
			if n.Add(1) == 1 {
				return false, &APIError{StatusCode: 429, RetryAfter: 7 * time.Second}
			}
			return true, nil
		})
		require.NoError(t, err)
		assert.Equal(t, 7*time.Second, time.Since(start))
	})
}

func TestMachineTarget_UnreachableStates(t *testing.T) {
	tests := []struct {
		status, want ComputerStatus
		dead         bool
	}{
		{StatusCreating, StatusRunning, false},
		{StatusStopped, StatusRunning, false},
		{"some-new-state", StatusRunning, false},
		{StatusError, StatusRunning, true},
		{StatusError, StatusStopped, true},
		{StatusError, StatusError, false},
		{StatusError, StatusDestroying, false},
		{StatusError, StatusDestroyed, false},
		{StatusDestroying, StatusRunning, true},
		{StatusDestroying, StatusDestroying, false},
		{StatusDestroying, StatusDestroyed, false},
		{StatusDestroyed, StatusRunning, true},
		{StatusDestroyed, StatusDestroying, true},
		{StatusDestroyed, StatusDestroyed, false},
	}
	for _, tt := range tests {
		target := machineTarget{kind: "computer", id: "cmp_1", want: tt.want, wantText: string(tt.want)}
		err := target.unreachable(tt.status)
		assert.Equal(t, tt.dead, err != nil, "%s while waiting for %s", tt.status, tt.want)
		if tt.dead {
			assert.Equal(t, &MachineStateError{ID: "cmp_1", Status: tt.status, kind: "computer", want: string(tt.want)}, err)
		}
	}
}

func TestMachineStateError_SaysWhatAndUnwrapsTheNotFound(t *testing.T) {
	sandbox := machineTarget{kind: "sandbox", id: "sb_1", want: StatusRunning, wantText: "it to be ready"}
	gone := sandbox.gone(&APIError{StatusCode: 404, Code: "NOT_FOUND", Message: "no such sandbox"})
	var stateErr *MachineStateError
	require.ErrorAs(t, gone, &stateErr)
	assert.Equal(t, StatusDestroyed, stateErr.Status)
	assert.ErrorIs(t, gone, ErrNotFound)
	assert.Equal(t, "miosa: sandbox sb_1 is gone while waiting for it to be ready: 404 NOT_FOUND: no such sandbox", gone.Error())

	other := &APIError{StatusCode: 403}
	assert.Same(t, error(other), sandbox.gone(other), "only a 404 means gone")

	// A value built by a caller, e.g. in a test double, still reads well.
	assert.Equal(t, `miosa: machine m_1 is in state "error" while waiting for the wanted state`,
		(&MachineStateError{ID: "m_1", Status: StatusError}).Error())
	assert.NotErrorIs(t, &MachineStateError{ID: "m_1", Status: StatusError}, ErrNotFound)
	assert.False(t, errors.Is(&MachineStateError{}, ErrWaitTimeout))
}

func TestWithPollInterval_SetsTheDefaultIntervalOfEveryWait(t *testing.T) {
	cases := []struct {
		name string
		opts []Option
		wait WaitOptions
		want time.Duration
	}{
		{"the wait's own default", nil, WaitOptions{}, 2 * time.Second},
		{"the client's interval", []Option{WithPollInterval(5 * time.Millisecond)}, WaitOptions{}, 5 * time.Millisecond},
		{"the wait's interval wins", []Option{WithPollInterval(5 * time.Millisecond)}, WaitOptions{PollInterval: time.Second}, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := statusServer("creating", "running")
				c := newFakeClient(t, rec, tc.opts...)
				start := time.Now()
				_, err := c.Computers.WaitForStatus(t.Context(), "cmp_1", StatusRunning, tc.wait)
				require.NoError(t, err)
				assert.Equal(t, tc.want, time.Since(start))
			})
		})
	}
	_, err := NewClient(testKey, WithPollInterval(-time.Second))
	require.ErrorIs(t, err, ErrInvalidParams)
}
