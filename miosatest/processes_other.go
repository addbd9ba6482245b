//go:build !unix

package miosatest

import "os/exec"

// terminateGroup kills a started command: without process groups and
// SIGTERM there is no gentler way to ask it to end.
func terminateGroup(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
}
