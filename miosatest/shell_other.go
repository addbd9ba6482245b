//go:build !unix

package miosatest

import "os/exec"

// killWholeGroup leaves cmd as it is: without process groups only the
// command itself is killed, and WaitDelay bounds the wait for its children.
func killWholeGroup(cmd *exec.Cmd) {}

// terminateGroup kills a started command: without process groups and
// SIGTERM there is no gentler way to ask it to end.
func terminateGroup(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
}
