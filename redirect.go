package miosa

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// sameOriginOnly returns a copy of hc that follows a redirect only when it
// stays within base's origin: scheme, host and port. Go's own client drops
// the Authorization header only when the host name changes, so without this
// a redirect to another port, or from https to http, would carry the key,
// and headers added with WithHeader would follow a redirect anywhere. hc's
// own CheckRedirect still decides the redirects that stay.
func sameOriginOnly(hc *http.Client, base string) *http.Client {
	baseURL, _ := url.Parse(base) // already checked by checkBaseURL
	origin := originOf(baseURL)
	guarded := *hc
	next := hc.CheckRedirect
	guarded.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if originOf(req.URL) != origin {
			return &redirectError{to: originOf(req.URL) + req.URL.EscapedPath(), origin: origin}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &guarded
}

// originOf returns u's scheme, host and port, with the scheme's default
// port filled in, in lower case.
func originOf(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		case "http":
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// redirectError is a redirect the SDK refused to follow because it leaves
// the API's origin. It names where the redirect pointed (without its query,
// which a server could fill with anything).
type redirectError struct{ to, origin string }

func (e *redirectError) Error() string {
	return fmt.Sprintf("redirected to %s, outside %s: not followed, so the API key is not sent there", e.to, e.origin)
}

// refusedAfterRedirectError is a refusal of a call that must not be sent
// twice, answered not by the call's endpoint but where the server
// redirected it (a 303 after a POST is followed as a GET). The request
// reached the server, which may have acted on it before redirecting, so the
// outcome is unknown whatever the final answer says: it is never retried,
// and a 404 there does not mean the endpoint is missing.
type refusedAfterRedirectError struct{ apiErr *APIError }

func (e *refusedAfterRedirectError) Error() string {
	return e.apiErr.Error() + ", answered after a redirect: the request may have been acted on"
}

// Unwrap makes the error match ErrOutcomeUnknown and the refusal itself.
func (e *refusedAfterRedirectError) Unwrap() []error { return []error{ErrOutcomeUnknown, e.apiErr} }
