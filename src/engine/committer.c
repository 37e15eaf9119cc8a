/* The committer: one thread that takes a batch whose state the loop has written and does
 * its Kafka side (outputs and input offsets in one transaction, or delivered and then
 * committed), while the loop reads and computes the next batch. The loop writes the
 * batch's positions once it has waited for it (with its next Redis write).
 *
 * One job at a time, handed over and waited for under job_lock. While a job is in its
 * hands the committer owns the producer and the tasks' pending idle outputs; the loop
 * touches neither until it has waited for the job (processor.c). */
#include "engine/processor_int.h"

static void run_job(kefu_processor_t *p, commit_job_t *job) {
  kefu_http_busy_step(1, true); /* /readyz: a commit blocked by a broker outage */
  job->rc = engine_can_commit(p)
                ? engine_kafka_commit(p, &job->b, &job->bs, job->errstr, sizeof job->errstr)
                : ENGINE_NEW_PRODUCER;
  kefu_http_busy_step(1, false);
  job->done_ms = engine_wall_ms();
}

static void *committer_main(void *arg) {
  kefu_processor_t *p = arg;
  pthread_mutex_lock(&p->job_lock);
  for (;;) {
    while (!p->committer_quit && (!p->job || p->job_done))
      pthread_cond_wait(&p->job_cond, &p->job_lock);
    if (p->committer_quit)
      break;
    commit_job_t *job = p->job;
    pthread_mutex_unlock(&p->job_lock);
    run_job(p, job);
    pthread_mutex_lock(&p->job_lock);
    p->job_done = true;
    pthread_cond_broadcast(&p->job_cond);
  }
  pthread_mutex_unlock(&p->job_lock);
  return NULL;
}

int engine_committer_start(kefu_processor_t *p, char *errstr, size_t errlen) {
  pthread_mutex_init(&p->job_lock, NULL);
  pthread_cond_init(&p->job_cond, NULL);
  int err = pthread_create(&p->committer, NULL, committer_main, p);
  if (err) {
    snprintf(errstr, errlen, "starting the committer thread: %s", strerror(err));
    return -1;
  }
  p->committer_running = true;
  return 0;
}

void engine_committer_stop(kefu_processor_t *p) {
  if (!p->committer_running)
    return;
  pthread_mutex_lock(&p->job_lock);
  while (p->job && !p->job_done) /* a job under way finishes first */
    pthread_cond_wait(&p->job_cond, &p->job_lock);
  p->committer_quit = true;
  pthread_cond_broadcast(&p->job_cond);
  pthread_mutex_unlock(&p->job_lock);
  pthread_join(p->committer, NULL);
  pthread_mutex_destroy(&p->job_lock);
  pthread_cond_destroy(&p->job_cond);
  p->committer_running = false;
}

void engine_commit_async(kefu_processor_t *p, commit_job_t *job) {
  pthread_mutex_lock(&p->job_lock);
  p->job = job;
  p->job_done = false;
  pthread_cond_broadcast(&p->job_cond);
  pthread_mutex_unlock(&p->job_lock);
}

commit_job_t *engine_commit_wait(kefu_processor_t *p) {
  if (!p->committer_running)
    return NULL;
  pthread_mutex_lock(&p->job_lock);
  while (p->job && !p->job_done)
    pthread_cond_wait(&p->job_cond, &p->job_lock);
  commit_job_t *job = p->job;
  p->job = NULL;
  pthread_mutex_unlock(&p->job_lock);
  return job;
}
