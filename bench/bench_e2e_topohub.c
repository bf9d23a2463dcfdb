/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The topohub subscriber of the end-to-end benchmark: a process that loads
 * libtopohub.so with dlopen (as the daemons that host the plugin do), watches
 * the prefix recursively, and dispatches on its own thread in the library's
 * default wait mode (spin briefly, then sleep on the futex) unless --wait says
 * otherwise. With --watch / --watch-dir, the Vitess-shaped scenario's files
 * instead of the prefix.
 */
#include "bench/bench_e2e.h"

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "plugins/topohub.h"

static void on_event(const struct th_event *ev, void *arg)
{
	struct e2e_sub *s = arg;
	switch (ev->kind) {
	case TH_EVENT_PUT:
		if (th__e2e_under_prefix(s, ev->key, ev->key_len))
			th__e2e_value(s, ev->value, ev->value_len);
		break;
	case TH_EVENT_SYNCED:
		th__e2e_ready(s);
		th__e2e_synced(s);
		break;
	case TH_EVENT_RESYNC:
		th__e2e_resync(s, ev->reason);
		break;
	default: /* INITIAL: the setup values; no deletes in this benchmark */
		break;
	}
}

/* The Vitess-shaped scenario (--watch, --watch-dir): the files a vtgate or a
 * vttablet watches, exactly, or a directory recursively; the process is ready
 * once each watch has its current value (INITIAL, or SYNCED for the
 * directory). Every value, the current ones included, is a delivery, as for
 * the Go processes (vitess.go's vsub). */
struct layout_sub {
	struct e2e_sub *s;
	unsigned nwatch, nready;
};

struct layout_watch {
	struct layout_sub *l;
	bool dir, ready;
};

static void layout_ready(struct layout_watch *w)
{
	if (!w->ready) {
		w->ready = true;
		if (++w->l->nready == w->l->nwatch)
			th__e2e_ready(w->l->s);
	}
}

static void on_layout_event(const struct th_event *ev, void *arg)
{
	struct layout_watch *w = arg;
	struct e2e_sub *s = w->l->s;
	switch (ev->kind) {
	case TH_EVENT_INITIAL:
	case TH_EVENT_PUT:
		th__e2e_deliver_only(s, ev->value, ev->value_len);
		if (ev->kind == TH_EVENT_INITIAL && !w->dir)
			layout_ready(w);
		break;
	case TH_EVENT_SYNCED:
		if (w->dir)
			layout_ready(w);
		th__e2e_synced(s);
		break;
	case TH_EVENT_RESYNC:
		th__e2e_resync(s, ev->reason);
		break;
	default: /* NOT_FOUND, DELETE, ENDED: vsetup created every file and nothing deletes one */
		th__e2e_error(s, "watch of %.*s: event %d", (int)ev->key_len, ev->key, (int)ev->kind);
		break;
	}
}

/* The driver stops a run with the run file's flag, then SIGTERM. A thread of
 * ours waits for the signal and ends the dispatcher's wait with an unwatch (a
 * registration from another thread kicks it), so that an idle subscriber
 * sleeps until it has something to do instead of waking to poll the flag;
 * the flag is still read after each dispatch (1 s at most). */
struct stopper {
	const struct th_api *api;
	struct th_conn *c;
	th_watch_id id;
	sigset_t set;
	pthread_mutex_t lock;
	bool closing;
	atomic_bool stop;
};

static void *stopper_main(void *p)
{
	struct stopper *st = p;
	int sig;
	if (sigwait(&st->set, &sig) == 0) {
		atomic_store(&st->stop, true);
		pthread_mutex_lock(&st->lock);
		if (!st->closing)
			st->api->unwatch(st->c, st->id);
		pthread_mutex_unlock(&st->lock);
	}
	return NULL;
}

int th__e2e_sub_topohub(struct e2e_sub *s, const struct e2e_sub_opts *o)
{
	/* Before any thread exists (the library's, ours): SIGTERM only by sigwait. */
	static struct stopper st = { .lock = PTHREAD_MUTEX_INITIALIZER };
	sigemptyset(&st.set);
	sigaddset(&st.set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &st.set, NULL);
	const char *lib = o->lib ? o->lib : "libtopohub.so";
	void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		th__e2e_error(s, "dlopen: %s", dlerror());
		return 1;
	}
	th_api_get_fn *get = (th_api_get_fn *)dlsym(h, TH_API_SYMBOL);
	const struct th_api *api;
	int rc = get ? get(TH_ABI_MAJOR, TH_ABI_MINOR, &api) : -1;
	if (rc) {
		th__e2e_error(s, "%s: no usable %s (%d)", lib, TH_API_SYMBOL, rc);
		return 1;
	}
	char name[32];
	snprintf(name, sizeof name, "e2e-sub-%u", s->idx);
	struct th_open_opts oo = {
		.size = sizeof oo,
		.socket_path = o->hub_socket,
		.timeout_ns = (uint64_t)o->timeout_ms * 1000000u,
		.spin_ns = o->spin_ns,
		.wait_mode = !strcmp(o->wait, "spin") ? TH_WAIT_SPIN : !strcmp(o->wait, "fd") ? TH_WAIT_FD : TH_WAIT_FUTEX,
		.name = name,
	};
	struct th_conn *c;
	rc = api->open(&oo, &c);
	if (rc) {
		th__e2e_error(s, "open %s: %s", o->hub_socket ? o->hub_socket : TH_DEFAULT_SOCKET, api->strerror(rc));
		return 1;
	}
	/* Without --watch / --watch-dir: one recursive watch of the prefix. */
	struct layout_sub layout = { .s = s, .nwatch = o->nwatch + (o->watch_dir != NULL) };
	struct layout_watch lw[E2E_MAX_WATCHES + 1];
	th_watch_id id;
	for (unsigned i = 0; i < (layout.nwatch ? layout.nwatch : 1); i++) {
		bool dir = !layout.nwatch || i == o->nwatch;
		lw[i] = (struct layout_watch){ .l = &layout, .dir = dir };
		struct th_watch_opts wo = {
			.size = sizeof wo,
			.table = TH_TABLE_DATA,
			.path = !layout.nwatch ? s->prefix : dir ? o->watch_dir : o->watch[i],
			.callback = layout.nwatch ? on_layout_event : on_event,
			.arg = layout.nwatch ? (void *)&lw[i] : s,
		};
		rc = dir ? api->watch_recursive(c, &wo, &id) : api->watch(c, &wo, &id);
		if (rc) {
			th__e2e_error(s, "watch %s: %s", wo.path, api->strerror(rc));
			return 1;
		}
	}
	st.api = api, st.c = c, st.id = id;
	pthread_t t;
	if (pthread_create(&t, NULL, stopper_main, &st) == 0)
		pthread_detach(t);
	while (!th__e2e_stopping(s) && !atomic_load(&st.stop)) {
		rc = api->dispatch(c, 1000 * 1000000); /* a long wait: idle subscribers that poll cost the host */
		if (rc < 0) {
			th__e2e_error(s, "dispatch: %s", api->strerror(rc));
			break;
		}
	}
	pthread_mutex_lock(&st.lock);
	st.closing = true;
	pthread_mutex_unlock(&st.lock);
	api->close(c);
	return 0;
}
