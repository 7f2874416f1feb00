/* The benchmark message: an envelope of exactly `size` bytes (size >= 256), shared by the C
 * baseline and the C++ benchmarks so both sides send the same bytes. */
#ifndef ASYA_BENCH_MESSAGE_H_
#define ASYA_BENCH_MESSAGE_H_

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char kBenchPrefix[] =
    "{\"id\":\"bench-%08lu\",\"route\":{\"actors\":[\"bench\",\"sink\"],\"current\":0},"
    "\"headers\":{\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"},"
    "\"payload\":{\"text\":\"";
static const char kBenchSuffix[] = "\"}}";

/* Writes the envelope with id bench-<n> into out (capacity >= size + 1); returns size. */
static size_t BenchMessage(char* out, size_t size, unsigned long n) {
  if (size < 256) return 0;
  int head = snprintf(out, size + 1, kBenchPrefix, n);
  size_t tail = sizeof kBenchSuffix - 1;
  memset(out + head, 'x', size - (size_t)head - tail);
  memcpy(out + size - tail, kBenchSuffix, tail + 1);
  return size;
}

#endif /* ASYA_BENCH_MESSAGE_H_ */
