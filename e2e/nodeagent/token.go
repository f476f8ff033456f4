package nodeagent

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// tokenKey tells the tokens of one pod apart.
type tokenKey struct {
	audience string
	seconds  int64
}

// token is a service account token and when to replace it.
type token struct {
	value     string
	expires   time.Time
	refreshAt time.Time
}

// token returns a token of the pod's service account for audience (""
// means the API server's), bound to the pod, from the TokenRequest API as
// the kubelet gets them. It is reused until 80% of its life (at most a day) has passed; a
// failed refresh keeps the old one while it is valid.
func (w *worker) token(ctx context.Context, audience string, seconds int64) (string, error) {
	key := tokenKey{audience: audience, seconds: seconds}
	now := time.Now()
	cached := w.tokens[key]
	if cached != nil && now.Before(cached.refreshAt) {
		return cached.value, nil
	}
	tr := &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{
			ExpirationSeconds: &seconds,
			BoundObjectRef: &authenticationv1.BoundObjectReference{
				Kind: "Pod", APIVersion: "v1", Name: w.name, UID: w.uid,
			},
		},
	}
	if audience != "" {
		tr.Spec.Audiences = []string{audience}
	}
	out, err := w.a.cfg.Client.CoreV1().ServiceAccounts(w.ns).CreateToken(ctx, w.serviceAccount(), tr, metav1.CreateOptions{})
	if err != nil {
		if cached != nil && now.Before(cached.expires) {
			w.log.Warn("refreshing a service account token failed; keeping the old one", "err", err)
			cached.refreshAt = now.Add(5 * time.Second)
			return cached.value, nil
		}
		return "", fmt.Errorf("requesting a token for service account %s/%s: %w", w.ns, w.serviceAccount(), err)
	}
	ttl := time.Duration(seconds) * time.Second
	expires := now.Add(ttl)
	if exp := out.Status.ExpirationTimestamp.Time; exp.After(now) {
		expires = exp
		ttl = exp.Sub(now)
	}
	// As the kubelet: at 80% of its life, and at least daily (the API
	// server may give a year for the kube-api-access volume's 3607 s).
	w.tokens[key] = &token{value: out.Status.Token, expires: expires, refreshAt: now.Add(min(ttl*8/10, 24*time.Hour))}
	return out.Status.Token, nil
}

// tokenRefreshAt is when the next token is due for a refresh, zero if the
// pod has none.
func (w *worker) tokenRefreshAt() time.Time {
	var first time.Time
	for _, t := range w.tokens {
		if first.IsZero() || t.refreshAt.Before(first) {
			first = t.refreshAt
		}
	}
	return first
}
