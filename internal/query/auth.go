package query

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
)

// Auth is the optional authentication of the HTTP port, for deployments
// with no proxy in front: a bearer token, basic-auth credentials, or both
// (either is then accepted). Grafana's Tempo data source sends basic auth
// from its settings, or a bearer token as a custom Authorization header.
type Auth struct {
	BearerToken        string
	BasicUser, BasicPW string
}

// Enabled reports whether any credential is configured.
func (a Auth) Enabled() bool { return a.BearerToken != "" || a.BasicUser != "" }

// Check rejects half-configured basic auth.
func (a Auth) Check() error {
	if (a.BasicUser == "") != (a.BasicPW == "") {
		return errors.New("basic auth needs both a user and a password")
	}
	return nil
}

// openPaths are answered without credentials: Kubernetes probes cannot
// send any.
var openPaths = map[string]bool{"/ready": true}

// RequireAuth wraps h so that every request but /ready must carry the
// credentials of a; others get 401 with a WWW-Authenticate challenge (gRPC
// clients of the streaming search see Unauthenticated). Comparisons take
// constant time, and credentials are never logged.
func RequireAuth(h http.Handler, a Auth) http.Handler {
	if !a.Enabled() {
		return h
	}
	digest := func(s string) [32]byte { return sha256.Sum256([]byte(s)) }
	token, user, pw := digest(a.BearerToken), digest(a.BasicUser), digest(a.BasicPW)
	equal := func(got string, want [32]byte) bool {
		d := digest(got)
		return subtle.ConstantTimeCompare(d[:], want[:]) == 1
	}
	var challenges []string
	if a.BearerToken != "" {
		challenges = append(challenges, `Bearer realm="tracectl"`)
	}
	if a.BasicUser != "" {
		challenges = append(challenges, `Basic realm="tracectl", charset="UTF-8"`)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := "/" + strings.TrimLeft(r.URL.Path, "/")
		ok := openPaths[path]
		if !ok && a.BearerToken != "" {
			if scheme, cred, found := strings.Cut(r.Header.Get("Authorization"), " "); found && strings.EqualFold(scheme, "Bearer") {
				ok = equal(strings.TrimSpace(cred), token)
			}
		}
		if !ok && a.BasicUser != "" {
			if u, p, found := r.BasicAuth(); found {
				// Both compared, whatever the first answer, so timing
				// tells nothing of which was wrong.
				uok, pok := equal(u, user), equal(p, pw)
				ok = uok && pok
			}
		}
		if !ok {
			for _, c := range challenges {
				w.Header().Add("WWW-Authenticate", c)
			}
			writeText(w, http.StatusUnauthorized,
				"authentication required: send the credentials configured on tracectl serve (--http-auth-token as a Bearer token, or --http-auth-user/--http-auth-password as basic auth)")
			return
		}
		h.ServeHTTP(w, r)
	})
}
