package miosatest

import "context"

// A command the fake runs (a local shell command, a scripted stream, a
// HandleExecFunc function) belongs to its machine, not to the request that
// started it: as on the real server, it keeps running when the client goes
// away (a break out of a stream, a context that ends during an exec), and
// ends by its own timeout, when its machine stops, restarts, fails, is
// paused or deleted, or when the server closes. A background process
// belongs to its machine the same way.

// commandContext returns the context a command started now on machine id
// runs under: it ends when the machine leaves "running" or the server
// closes, never when a client goes away. For a machine that is gone or no
// longer runs (it stopped since its exec was admitted) the context has
// already ended.
func (e *engine) commandContext(id string) context.Context {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.machines[id]
	if m == nil || m.status != statusRunning {
		ended, end := context.WithCancel(e.closeCtx)
		end()
		return ended
	}
	return e.machineCommands(m)
}

// machineCommands returns the context the commands of the running machine
// m run under, made on first use; the caller holds engine.mu.
func (e *engine) machineCommands(m *machine) context.Context {
	if m.commands == nil {
		m.commands, m.endCommands = context.WithCancel(e.closeCtx)
	}
	return m.commands
}

// endCommands ends every command running on m, as a machine that stops
// ends its processes; the caller holds engine.mu.
func (e *engine) endCommands(m *machine) {
	if m.endCommands != nil {
		m.endCommands()
		m.commands, m.endCommands = nil, nil
	}
}
