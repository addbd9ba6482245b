//go:build unix

package miosatest

import (
	"os/exec"
	"syscall"
)

// killWholeGroup runs cmd in a process group of its own and makes its
// cancellation kill the whole group, so a command's children (sh -c "sleep
// 30") do not outlive it and hold its output open.
func killWholeGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

// terminateGroup sends SIGTERM to the process group of a started command
// (see killWholeGroup), as a process stop does first.
func terminateGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
}
