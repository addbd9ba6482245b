package miosa

import (
	"errors"
	"net/http"
	"sync"
	"time"
)

// The retry budget bounds how much an outage is multiplied by retries:
// every call a Client starts earns retryBudgetRatio of a retry, every retry
// of a server or network failure spends one, what was earned and spent is
// forgotten after retryBudgetWindow, and retryBudgetFloor retries per window
// are always allowed, so that a client making few calls can still retry
// them. It is Finagle's RetryBudget (with a smaller floor), and what gRPC's
// retry throttling does with a token count.
//
// Against a server that fails everything, n concurrent calls then make at
// most n·(1+retryBudgetRatio) + retryBudgetFloor attempts, not n·3.
const (
	retryBudgetRatio  = 0.2
	retryBudgetFloor  = 10
	retryBudgetWindow = 10 * time.Second
)

// retryBudget is one Client's budget of retries. It is safe for concurrent
// use.
type retryBudget struct {
	mu      sync.Mutex
	calls   windowCount // calls started, per second
	retries windowCount // retries the budget paid for, per second
}

// budgetSlots is how many one-second slots hold a window: one more than
// its seconds, for the slot it is part-way through.
const budgetSlots = int(retryBudgetWindow/time.Second) + 1

// deposit records a call started at now.
func (b *retryBudget) deposit(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	b.calls.add(now)
}

// withdraw reports whether a retry at now fits the budget, and if so
// spends it.
func (b *retryBudget) withdraw(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.init()
	from := now.Add(-retryBudgetWindow + time.Second)
	calls, retries := b.calls.sum(from, now), b.retries.sum(from, now)
	if float64(retries+1) > retryBudgetFloor+retryBudgetRatio*float64(calls) {
		return false
	}
	b.retries.add(now)
	return true
}

func (b *retryBudget) init() {
	if b.calls.counts == nil {
		b.calls = newWindowCount(time.Second, budgetSlots)
		b.retries = newWindowCount(time.Second, budgetSlots)
	}
}

// spendsRetryBudget reports whether a retry after failure is paid from the
// retry budget: one after a server failure (5xx, 408) or after no answer
// at all. A 429 is not: the pacer answers it, for every call at once. Nor is
// an answer the server declared retryable below 500 (a machine still
// starting): the server itself asks for the call again.
func spendsRetryBudget(failure error) bool {
	var apiErr *APIError
	if errors.As(failure, &apiErr) {
		return apiErr.StatusCode >= 500 || apiErr.StatusCode == http.StatusRequestTimeout
	}
	return true
}

// whyBudgetSpent is the reason a retry the budget refused is not sent; the
// call's error says it too.
const whyBudgetSpent = "the client's retry budget is spent: retries after server and network failures are limited to a fifth of its recent calls"
