// Client side of the runtime socket: sends one request frame, reads one response frame.
//
// RuntimeCaller is what the sidecar needs from a runtime (readiness, one call, reset); tests put a
// fake behind it. RuntimeClient is the Unix-socket implementation. It works with runtimes that keep
// a connection open for several frames (ours) and with the original asya_runtime.py, which closes
// the connection after each response. Thread-safe: Call() and CallAsync() may run from several
// threads at once; each call uses its own connection.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "asya/base/result.h"

namespace asya::protocol {

struct RuntimeClientOptions {
  std::string socket_path;  // ${ASYA_SOCKET_DIR}/asya-runtime.sock
  size_t max_frame_bytes = 64u << 20;
  // Keep connections open between calls (a pool of idle connections). A reused connection that
  // the runtime already closed is detected and replaced without re-sending a processed request.
  bool reuse_connections = true;
};

class RuntimeCaller {
 public:
  virtual ~RuntimeCaller() = default;

  // Readiness gate (reference-dataplane §3.1): true when the runtime is ready to take calls.
  virtual bool Ready(std::chrono::milliseconds connect_timeout) = 0;
  // Sends `request` and returns the response frame body; errors as RuntimeClient::Call below.
  virtual Result<std::string> Call(std::string_view request,
                                   std::chrono::steady_clock::time_point deadline) = 0;
  // Call(), and `request_done` runs (at most once, before it returns) as soon as the runtime has
  // started to answer: `request` will not be read again, so the caller may free its memory while
  // a large response is still being read. It does not run for a call that failed before any
  // answer (the caller may then call again with the same request). The default runs it when
  // Call() returned a response.
  virtual Result<std::string> CallReleasing(std::string_view request,
                                            std::chrono::steady_clock::time_point deadline,
                                            const std::function<void()>& request_done) {
    auto response = Call(request, deadline);
    if (response) {
      request_done();
    }
    return response;
  }
  // What CallAsync() ends with: the response frame body, or the error Call() would have returned.
  using CallDone = std::function<void(Result<std::string>)>;
  // Whether CallAsync() returns before the runtime has answered (RuntimeClient: yes; the default:
  // no, it is Call()).
  [[nodiscard]] virtual bool CallsAsync() const { return false; }
  // Call() without waiting for the answer: `done` runs exactly once with what Call() would have
  // returned (same errors, same retry of a reused connection the runtime had closed). It runs on
  // the calling thread before CallAsync() returns when the call fails before the request was
  // sent (or always, in the default), else later on a thread of the caller implementation that
  // serves every call's answer: there it must not block for long. The caller keeps `request`
  // valid until `done` has run. There is no release callback: a caller that wants to free a large
  // request early uses CallReleasing().
  virtual void CallAsync(std::string_view request, std::chrono::steady_clock::time_point deadline,
                         CallDone done) {
    done(Call(request, deadline));
  }
  // Forgets connections to a runtime that went away (timeout, crash, restart).
  virtual void Reset() = 0;
  // After a call failed with the runtime closing the connection: RuntimeDeathNote (below) for
  // this runtime, "" when unknown.
  virtual std::string DeathNote(std::chrono::milliseconds /*wait*/) { return ""; }
};

class RuntimeClient final : public RuntimeCaller {
 public:
  explicit RuntimeClient(RuntimeClientOptions options);
  ~RuntimeClient() override;
  RuntimeClient(const RuntimeClient&) = delete;
  RuntimeClient& operator=(const RuntimeClient&) = delete;

  // Sends `request` and returns the response frame body. `deadline` bounds connect+write+read.
  // Errors: kDeadlineExceeded on timeout (the connection is dropped); kUnavailable when the socket
  // cannot be reached ("failed to connect to runtime socket: ..."); kAborted-like kUnavailable when
  // the runtime closed the connection mid-call ("failed to read response from runtime: EOF");
  // kResourceExhausted when either frame exceeds max_frame_bytes. Messages follow
  // reference-dataplane §2.5 wording.
  Result<std::string> Call(std::string_view request,
                           std::chrono::steady_clock::time_point deadline) override;
  // Runs `request_done` once the response's length prefix has arrived (no retry can re-send the
  // request after that).
  Result<std::string> CallReleasing(std::string_view request,
                                    std::chrono::steady_clock::time_point deadline,
                                    const std::function<void()>& request_done) override;

  // True: CallAsync() returns once the request is sent.
  [[nodiscard]] bool CallsAsync() const override { return true; }
  // Call() up to and including sending the request, on the calling thread (a failure there runs
  // `done` before CallAsync() returns); then the client's event thread (one per client, started
  // by the first CallAsync()) reads the response without blocking, with the same rules, errors
  // and retry as Call() (a retry connects and sends from there, bounded by the deadline), and
  // runs `done` there, holding no lock of the client (`done` may call CallAsync() or Reset(), but
  // must not destroy the client). Sync and async calls share the pool of idle connections.
  // Destroying the client drops calls still in flight: their `done` never runs.
  void CallAsync(std::string_view request, std::chrono::steady_clock::time_point deadline,
                 CallDone done) override;

  // Drops every idle pooled connection (e.g. after the runtime restarted); calls in flight keep
  // theirs.
  void Reset() override;

  // RuntimeReady() on this client's socket path.
  bool Ready(std::chrono::milliseconds connect_timeout) override;
  // RuntimeDeathNote() on this client's socket path.
  std::string DeathNote(std::chrono::milliseconds wait) override;

 private:
  // One call with its retry on a closed pooled connection; `release` as in CallReleasing.
  Result<std::string> CallOnce(std::string_view request,
                               std::chrono::steady_clock::time_point deadline,
                               const std::function<void()>& release);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Readiness gate (reference-dataplane §3.1): true when `<dir>/runtime-ready` exists, the socket
// path is a socket and a test connect succeeds within `connect_timeout`.
bool RuntimeReady(std::string_view socket_path, std::chrono::milliseconds connect_timeout);

// Why a call ended with the runtime closing the connection mid-call, when it can be told:
// "the runtime process died (signal 9 (SIGKILL))" once `<dir>/runtime-exit` (runtime_files.h,
// written by a supervisor that reaped it: `asya up`) appears within `wait`; "the runtime process
// died" when the socket refuses connections but no such file appears; "" when the runtime still
// accepts connections (it only closed this one).
std::string RuntimeDeathNote(std::string_view socket_path, std::chrono::milliseconds wait);

}  // namespace asya::protocol
