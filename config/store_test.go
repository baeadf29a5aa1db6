package config

import (
	"strings"
	"testing"
)

// Each Redis mode has its scheme; what a cluster cannot do is refused at
// load time, naming the field.
func TestStoreModes(t *testing.T) {
	const keys = "\nsigning_keys: [{id: k, secret: '0123456789abcdef0123456789abcdef'}]"
	ok := []string{
		"store: {url: 'redis://:pw@redis:6379/2'}",
		"store: {url: 'rediss://redis:6379/0'}",
		"store: {url: 'redis-cluster://u:pw@n1:7000?addr=n2:7001&addr=n3:7002'}",
		"store: {url: 'rediss-cluster://n1:7000/0'}",
		"store: {url: 'redis-sentinel://s1:26379/3?master_name=m&addr=s2:26379', prefix: 'a{b}:'}",
		"store: {url: 'rediss-sentinel://s1:26379?master_name=m'}",
	}
	for _, body := range ok {
		if _, err := Load(write(t, body+keys), false); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
	bad := map[string]string{
		"store: {url: 'redis-cluster://n1:7000/1'}":                 "store.url",
		"store: {url: 'redis-cluster://n1:7000', prefix: 'gw{1}:'}": "store.prefix",
		"store: {url: 'redis+sentinel://s1:26379'}":                 "store.url",
	}
	for body, field := range bad {
		_, err := Load(write(t, body+keys), false)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: err = %v, want it to name %s", body, err, field)
		}
	}
}
