package miosa

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// NewHTTPClient returns a new HTTP client like the one a Client uses when
// WithHTTPClient is not given, with tlsConfig as its TLS configuration
// (nil: Go's defaults). Pass it to WithHTTPClient to trust a private
// certificate authority or present a client certificate without giving up
// the default's connection handling: keep-alive connections pooled per
// host; HTTP/2 for https, a connection dialled only when every one is busy
// and shared by every request waiting for it; HTTP/1.1 through a proxy,
// to servers without HTTP/2, and for plain http; no MaxConnsPerHost, which
// would queue ordinary calls behind open streams; no Timeout. miosatest's
// clients use it.
func NewHTTPClient(tlsConfig *tls.Config) *http.Client {
	return &http.Client{Transport: newDefaultTransport(tlsConfig)}
}

// defaultTransport is the default client's transport. HTTPS goes over
// HTTP/2 through golang.org/x/net/http2's transport, whose pool dials one
// connection at a time per server: requests that find every connection
// busy (none yet, or all at the server's stream limit) wait for that dial
// and share its connection. net/http's own transport instead dials one
// connection per such request before it knows the protocol, and HTTP/2
// then keeps one and closes the rest: 2,000 calls at once opened about
// 4,800 TLS connections to a server allowing 250 streams on each, where
// this pool opens 4-6. Plain http, requests through a proxy, and servers
// that do not offer HTTP/2 go through net/http's transport over HTTP/1.1.
type defaultTransport struct {
	h1 *http.Transport
	h2 *http2.Transport
	// http1Only holds the hosts (host:port) that answered the TLS
	// handshake without HTTP/2; requests to them skip the HTTP/2 pool.
	http1Only sync.Map
}

// errNoHTTP2 is a server whose TLS handshake did not choose HTTP/2.
var errNoHTTP2 = errors.New("the server does not speak HTTP/2")

// newDefaultTransport returns the default transport; tlsConfig, when not
// nil, is the TLS configuration of both protocols (tests trust their
// server's certificate with it).
func newDefaultTransport(tlsConfig *tls.Config) *defaultTransport {
	h1 := http.DefaultTransport.(*http.Transport).Clone()
	h1.MaxIdleConns = 256
	h1.MaxIdleConnsPerHost = 64
	// An HTTP/1.1 connection holds its buffers for life, and an open
	// readiness stream holds a connection. The SDK's requests and answers'
	// headers fit in 2 KiB; a body read or written in larger pieces
	// bypasses the buffer.
	h1.WriteBufferSize = 2 << 10
	h1.ReadBufferSize = 2 << 10
	// HTTP/2 goes through h2; a handshake h1 makes offers HTTP/1.1 alone.
	h1.ForceAttemptHTTP2 = false
	h1.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	h1.TLSClientConfig = tlsConfig.Clone()
	t := &defaultTransport{h1: h1}
	t.h2 = &http2.Transport{
		TLSClientConfig: tlsConfig.Clone(),
		DialTLSContext:  t.dialHTTP2,
		IdleConnTimeout: h1.IdleConnTimeout,
	}
	return t
}

func (t *defaultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" || t.proxied(req) {
		return t.h1.RoundTrip(req)
	}
	if _, ok := t.http1Only.Load(req.URL.Host); ok {
		return t.h1.RoundTrip(req)
	}
	resp, err := t.h2.RoundTrip(req)
	if errors.Is(err, errNoHTTP2) {
		// Nothing was sent: the handshake chose HTTP/1.1.
		t.http1Only.Store(req.URL.Host, struct{}{})
		return t.h1.RoundTrip(req)
	}
	return resp, err
}

// proxied reports whether req goes through a proxy (HTTPS_PROXY and its
// kin), which only net/http's transport speaks to.
func (t *defaultTransport) proxied(req *http.Request) bool {
	if t.h1.Proxy == nil {
		return false
	}
	proxy, err := t.h1.Proxy(req)
	return proxy != nil || err != nil
}

// dialHTTP2 opens a TLS connection for the HTTP/2 pool, offering HTTP/1.1
// too so that a server without HTTP/2 completes the handshake and says so,
// rather than failing it; such a connection is closed and the request
// goes over HTTP/1.1 instead. It dials and shakes hands as net/http's
// default transport does.
func (t *defaultTransport) dialHTTP2(ctx context.Context, network, addr string, config *tls.Config) (net.Conn, error) {
	config = config.Clone()
	config.NextProtos = []string{http2.NextProtoTLS, "http/1.1"}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout+t.h1.TLSHandshakeTimeout)
	defer cancel()
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: dialTimeout, KeepAlive: dialTimeout}, Config: config}
	conn, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if conn.(*tls.Conn).ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
		conn.Close()
		return nil, errNoHTTP2
	}
	return conn, nil
}

// dialTimeout bounds a TCP connect, as in net/http's default transport.
const dialTimeout = 30 * time.Second

// CloseIdleConnections closes the idle connections of both protocols.
func (t *defaultTransport) CloseIdleConnections() {
	t.h1.CloseIdleConnections()
	t.h2.CloseIdleConnections()
}
