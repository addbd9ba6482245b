//go:build unix

package miosatest

import (
	"os/exec"
	"syscall"
)

// terminateGroup sends SIGTERM to the process group of a started command
// (see killWholeGroup), as a process stop does first.
func terminateGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
}
