package query

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRequireAuth(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeText(w, 200, "ok") })
	type req struct {
		path, authz string
		user, pw    string
	}
	for _, c := range []struct {
		name string
		auth Auth
		req  req
		want int
	}{
		{"off", Auth{}, req{path: "/api/echo"}, 200},
		{"token missing", Auth{BearerToken: "s3cret"}, req{path: "/api/echo"}, 401},
		{"token right", Auth{BearerToken: "s3cret"}, req{path: "/api/echo", authz: "Bearer s3cret"}, 200},
		{"token scheme any case", Auth{BearerToken: "s3cret"}, req{path: "/api/search", authz: "bearer s3cret"}, 200},
		{"token wrong", Auth{BearerToken: "s3cret"}, req{path: "/api/echo", authz: "Bearer s3cre"}, 401},
		{"token as basic password", Auth{BearerToken: "s3cret"}, req{path: "/api/echo", user: "x", pw: "s3cret"}, 401},
		{"ready open", Auth{BearerToken: "s3cret"}, req{path: "/ready"}, 200},
		{"ready open with slashes", Auth{BearerToken: "s3cret"}, req{path: "//ready"}, 200},
		{"metrics closed", Auth{BearerToken: "s3cret"}, req{path: "/metrics"}, 401},
		{"basic right", Auth{BasicUser: "grafana", BasicPW: "pw-41x"}, req{path: "/api/echo", user: "grafana", pw: "pw-41x"}, 200},
		{"basic wrong password", Auth{BasicUser: "grafana", BasicPW: "pw-41x"}, req{path: "/api/echo", user: "grafana", pw: "pw-41X"}, 401},
		{"basic wrong user", Auth{BasicUser: "grafana", BasicPW: "pw-41x"}, req{path: "/api/echo", user: "grafanA", pw: "pw-41x"}, 401},
		{"either: basic", Auth{BearerToken: "tok-9f2", BasicUser: "user-x", BasicPW: "pw-7c1"}, req{path: "/api/echo", user: "user-x", pw: "pw-7c1"}, 200},
		{"either: token", Auth{BearerToken: "tok-9f2", BasicUser: "user-x", BasicPW: "pw-7c1"}, req{path: "/api/echo", authz: "Bearer tok-9f2"}, 200},
		{"either: neither", Auth{BearerToken: "tok-9f2", BasicUser: "user-x", BasicPW: "pw-7c1"}, req{path: "/api/echo", authz: "Bearer user-x"}, 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://x"+c.req.path, nil)
			if c.req.authz != "" {
				r.Header.Set("Authorization", c.req.authz)
			}
			if c.req.user != "" {
				r.SetBasicAuth(c.req.user, c.req.pw)
			}
			w := httptest.NewRecorder()
			RequireAuth(ok, c.auth).ServeHTTP(w, r)
			if w.Code != c.want {
				t.Fatalf("status %d, want %d", w.Code, c.want)
			}
			if c.want == 401 {
				ch := strings.Join(w.Header().Values("WWW-Authenticate"), ", ")
				if (c.auth.BearerToken != "") != strings.Contains(ch, "Bearer") || (c.auth.BasicUser != "") != strings.Contains(ch, "Basic") {
					t.Errorf("challenge %q does not name the configured schemes", ch)
				}
				body := w.Body.String()
				for _, secret := range []string{c.auth.BearerToken, c.auth.BasicPW} {
					if secret != "" && strings.Contains(body, secret) {
						t.Errorf("the 401 body shows a secret: %q", body)
					}
				}
			}
		})
	}
	if err := (Auth{BasicUser: "u"}).Check(); err == nil {
		t.Error("a user without a password is accepted")
	}
	if err := (Auth{BasicPW: "p"}).Check(); err == nil {
		t.Error("a password without a user is accepted")
	}
}
