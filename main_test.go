package miosa

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// request, retry sleep, poll loop and stream must clean up after itself.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
