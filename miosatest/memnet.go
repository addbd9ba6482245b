package miosatest

import (
	"context"
	"net"
	"net/http"
	"sync"
)

// memListener is a net.Listener whose connections are in-memory pipes, so
// that a server and its clients block only on channels. Code inside a
// testing/synctest bubble can then wait on the fake's timers (boot delays,
// builds, stream timeouts) in fake time.
type memListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

// memAddr is the address the in-memory server claims: loopback, so that the
// SDK accepts its plain-http URL, on a port nothing listens on.
var memAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr }

// dial hands one end of a new pipe to the server and returns the other.
func (l *memListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
	case <-ctx.Done():
	}
	client.Close()
	server.Close()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, &net.OpError{Op: "dial", Net: "memory", Addr: memAddr, Err: net.ErrClosed}
}

// client returns an HTTP client whose every connection is a pipe to l.
func (l *memListener) client() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: l.dial}}
}
