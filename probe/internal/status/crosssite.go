package status

import (
	"net/http"
	"net/url"
	"strings"
)

// sameSite refuses a state-changing request (anything but GET, HEAD and
// OPTIONS) that a browser says comes from another site's page: an Origin
// that is not this host, or Sec-Fetch-Site cross-site or same-site. The
// password a browser remembers must not let another page press or start
// checks on the customer's box. Requests without those headers (`probe
// trigger`, curl) pass: they are no browser's, and carry their own
// credentials.
func sameSite(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			if why := crossSite(r); why != "" {
				http.Error(w, "cross-site request refused: "+why, http.StatusForbidden)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// crossSite says why r comes from another site's page, or "".
func crossSite(r *http.Request) string {
	switch s := r.Header.Get("Sec-Fetch-Site"); s {
	case "", "same-origin", "none":
	default:
		return "Sec-Fetch-Site: " + s
	}
	if o := r.Header.Get("Origin"); o != "" {
		if u, err := url.Parse(o); err != nil || !strings.EqualFold(u.Host, r.Host) {
			return "Origin " + o
		}
	}
	return ""
}
