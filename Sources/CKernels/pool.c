// The compute thread pool: nthreads - 1 worker pthreads plus the caller as thread 0.
//
// A job is split into chunks that any thread may claim: `fn(ctx, chunk, nchunks)` runs once
// for every chunk, never twice at the same time, so a chunk index may also select a per-thread
// scratch area when nchunks <= nthreads. Claiming (not a fixed share per thread) matters when
// the cores are shared: a worker that is not scheduled leaves its chunks to whoever runs, and
// the caller waits only for chunks claimed, never for a thread to show up.
//
// Publishing: the caller stores fn/ctx, then `ticket` = (job, nchunks, next = 0) (release),
// then bumps `gen`. Threads claim by CAS on `ticket`; a claim only succeeds while the ticket
// still names the job the thread saw, so a late worker can never take a chunk of a newer job
// with an older fn. fn/ctx of a job are not overwritten before all its chunks are `completed`,
// which includes any chunk a slow thread has claimed. Workers spin on `gen` for a short while
// (~SPIN_NS), then sleep on it (futex on Linux, a condition variable elsewhere). `sleepers`
// tells the caller whether a wake-up call is needed: the worker increments it before its last
// look at `gen`, the caller bumps `gen` before reading it (both sequentially consistent), so
// one of them always sees the other.
#include "internal.h"
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

enum { SPIN_NS = 200000 };  // how long an idle worker spins before it sleeps
enum { YIELD_NS = 20000 };  // after this much spinning, spinners also yield (more threads than cores)

struct lk_pool {
  int nth;
  pthread_t *threads;  // (nth - 1) workers
  struct lk_worker *workers;
  _Alignas(64) _Atomic uint32_t gen;  // job generation; also the futex word
  _Alignas(64) _Atomic uint64_t ticket;  // job (24 bits) | nchunks (20) | next chunk to claim (20)
  _Alignas(64) _Atomic int completed;    // chunks of the current job finished
  _Alignas(64) _Atomic int sleepers;  // workers asleep (or about to sleep) on gen
  _Atomic int parked;                 // set by lk_pool_park: spinning workers go to sleep now
  _Atomic int quit;
  lk_task_fn fn;  // the current job, written by the caller before gen is bumped
  void *ctx;
  int isa;        // the caller's own ISA level (lk_set_thread_isa) for the job, or -1
#if !defined(__linux__)
  pthread_mutex_t mu;
  pthread_cond_t cv;
#endif
};

struct lk_worker {
  lk_pool *pool;
  int ith;
};

LK_INLINE void cpu_relax(void) {
#if LK_X86
  _mm_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/// Blocks while gen == seen.
static void sleep_on_gen(lk_pool *p, uint32_t seen) {
#if defined(__linux__)
  while (atomic_load(&p->gen) == seen)
    syscall(SYS_futex, (uint32_t *)&p->gen, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
#else
  pthread_mutex_lock(&p->mu);
  while (atomic_load(&p->gen) == seen) pthread_cond_wait(&p->cv, &p->mu);
  pthread_mutex_unlock(&p->mu);
#endif
}

static void wake_all(lk_pool *p) {
#if defined(__linux__)
  syscall(SYS_futex, (uint32_t *)&p->gen, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
#else
  pthread_mutex_lock(&p->mu);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
#endif
}

enum { TICKET_BITS = 20 };
#define TICKET_MASK ((UINT64_C(1) << TICKET_BITS) - 1)

LK_INLINE uint64_t make_ticket(uint32_t job, int nchunks) {
  return ((uint64_t)(job & 0xFFFFFF) << (2 * TICKET_BITS)) | ((uint64_t)nchunks << TICKET_BITS);
}

/// Claims and runs chunks of job `job` until none is left (or a newer job has replaced it).
static void run_chunks(lk_pool *p, uint32_t job) {
  const uint64_t want = (uint64_t)(job & 0xFFFFFF);
  uint64_t t = atomic_load_explicit(&p->ticket, memory_order_acquire);
  for (;;) {
    if ((t >> (2 * TICKET_BITS)) != want) return;
    const uint64_t n = (t >> TICKET_BITS) & TICKET_MASK, c = t & TICKET_MASK;
    if (c >= n) return;
    if (!atomic_compare_exchange_weak_explicit(&p->ticket, &t, t + 1, memory_order_acq_rel, memory_order_acquire))
      continue;
    lk_isa_thread = p->isa;
    p->fn(p->ctx, (int)c, (int)n);
    atomic_fetch_add_explicit(&p->completed, 1, memory_order_release);
    t = atomic_load_explicit(&p->ticket, memory_order_acquire);
  }
}

static void *worker_main(void *arg) {
  struct lk_worker *w = arg;
  lk_pool *p = w->pool;
  uint32_t seen = 0;
  for (;;) {
    // wait for the next generation: spin, then sleep
    uint32_t g;
    int64_t t0 = 0;
    for (int spins = 0;; spins++) {
      g = atomic_load_explicit(&p->gen, memory_order_acquire);
      if (g != seen) break;
      if ((spins & 255) == 255) {
        int64_t t = now_ns();
        if (!t0) t0 = t;
        if (t - t0 > YIELD_NS) sched_yield();
        if (t - t0 > SPIN_NS || atomic_load_explicit(&p->parked, memory_order_relaxed)) {
          atomic_fetch_add(&p->sleepers, 1);
          sleep_on_gen(p, seen);
          atomic_fetch_sub(&p->sleepers, 1);
          g = atomic_load_explicit(&p->gen, memory_order_acquire);
          break;
        }
      } else if (atomic_load_explicit(&p->parked, memory_order_relaxed)) {
        spins |= 254;  // check the clock / sleep on the next iteration
      }
      cpu_relax();
    }
    seen = g;
    if (atomic_load_explicit(&p->quit, memory_order_acquire)) break;
    run_chunks(p, g);
  }
  return NULL;
}

lk_pool *lk_pool_create(int nthreads) {
  if (nthreads < 1) nthreads = 1;
  lk_pool *p = aligned_alloc(64, (sizeof(lk_pool) + 63) & ~(size_t)63);
  if (!p) return NULL;
  memset(p, 0, sizeof *p);
  p->nth = nthreads;
#if !defined(__linux__)
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
#endif
  if (nthreads > 1) {
    p->threads = calloc((size_t)nthreads - 1, sizeof(pthread_t));
    p->workers = calloc((size_t)nthreads - 1, sizeof(struct lk_worker));
    for (int i = 1; i < nthreads; i++) {
      p->workers[i - 1] = (struct lk_worker){p, i};
      if (pthread_create(&p->threads[i - 1], NULL, worker_main, &p->workers[i - 1]) != 0) {
        p->nth = i;  // run with the threads we got
        break;
      }
    }
  }
  return p;
}

void lk_pool_destroy(lk_pool *p) {
  if (!p) return;
  if (p->nth > 1) {
    atomic_store(&p->quit, 1);
    atomic_fetch_add(&p->gen, 1);
    wake_all(p);
    for (int i = 1; i < p->nth; i++) pthread_join(p->threads[i - 1], NULL);
  }
  free(p->threads);
  free(p->workers);
#if !defined(__linux__)
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
#endif
  free(p);
}

int lk_pool_threads(const lk_pool *p) { return p ? p->nth : 1; }

void lk_pool_run_chunks(lk_pool *p, lk_task_fn fn, void *ctx, int nchunks) {
  if (nchunks < 1) return;
  if (nchunks > (int)TICKET_MASK) nchunks = (int)TICKET_MASK;
  if (!p || p->nth == 1 || nchunks == 1) {
    for (int c = 0; c < nchunks; c++) fn(ctx, c, nchunks);
    return;
  }
  const int saved_isa = lk_isa_thread;
  p->fn = fn;
  p->ctx = ctx;
  p->isa = saved_isa;
  atomic_store_explicit(&p->completed, 0, memory_order_relaxed);
  if (atomic_load_explicit(&p->parked, memory_order_relaxed)) atomic_store_explicit(&p->parked, 0, memory_order_relaxed);
  const uint32_t job = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;  // only the caller writes gen
  atomic_store_explicit(&p->ticket, make_ticket(job, nchunks), memory_order_release);
  atomic_fetch_add(&p->gen, 1);  // seq_cst: publishes the job, ordered before the sleepers check
  if (atomic_load(&p->sleepers) > 0) wake_all(p);
  run_chunks(p, job);
  lk_isa_thread = saved_isa;
  int64_t t0 = 0;
  for (int spins = 1; atomic_load_explicit(&p->completed, memory_order_acquire) != nchunks; spins++) {
    cpu_relax();
    if ((spins & 255) == 0) {  // a worker holding a chunk may be waiting for a core: give ours up now and then
      int64_t t = now_ns();
      if (!t0) t0 = t;
      else if (t - t0 > YIELD_NS) sched_yield();
    }
  }
}

void lk_pool_run(lk_pool *p, lk_task_fn fn, void *ctx) { lk_pool_run_chunks(p, fn, ctx, p ? p->nth : 1); }

void lk_pool_park(lk_pool *p) {
  if (p && p->nth > 1) atomic_store_explicit(&p->parked, 1, memory_order_relaxed);
}
