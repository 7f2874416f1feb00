// A Kubernetes API client over asya::http: connection settings (in-cluster service account or a
// kubeconfig), typed-enough verbs on JSON objects, server-side apply, list+watch, Events.
//
// Errors are asya::Result carrying the API's Status message; the code follows the HTTP status:
// 404 kNotFound, 409 AlreadyExists kAlreadyExists, 409 Conflict kFailedPrecondition (IsConflict),
// 410 Gone kResourceExhausted (IsGone), 400/422 kInvalidArgument, 401/403 kPermissionDenied,
// 429/5xx and transport failures kUnavailable. The library reads no environment variables: the
// program passes KUBERNETES_SERVICE_HOST/PORT or the kubeconfig path in.
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "asya/base/clock.h"
#include "asya/base/result.h"
#include "asya/http/client.h"

namespace asya::k8s {

// Where and how to reach the API server.
struct Config {
  std::string server;      // "https://10.0.0.1:443"
  std::string token;       // bearer token ("" = none)
  std::string token_file;  // re-read when it changes or on a 401 (projected tokens rotate)
  http::TlsOptions tls;
  std::string ns;  // the default namespace (kubeconfig context / service-account namespace)
};

// In-cluster: `host`/`port` are KUBERNETES_SERVICE_HOST/PORT; `sa_dir` holds token, ca.crt and
// namespace. Errors: kNotFound when host is empty or the token file is missing.
Result<Config> InClusterConfig(
    const std::string& host, const std::string& port,
    const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// A kubeconfig's text (YAML or JSON): the `context` ("" = current-context), its cluster (server,
// certificate-authority(-data), insecure-skip-tls-verify) and user (token, tokenFile,
// client-certificate(-data), client-key(-data)). Relative file paths are taken relative to
// `base_dir`; *-data fields are base64. Errors: kInvalidArgument naming `source` and the field.
Result<Config> ParseKubeconfig(std::string_view text, const std::string& source,
                               const std::string& context = "", const std::string& base_dir = "");
Result<Config> LoadKubeconfig(const std::string& path, const std::string& context = "");

// A resource: "" group for core. `namespaced` false for cluster-scoped kinds.
struct Resource {
  std::string group;  // "", "apps", "keda.sh", ...
  std::string version;
  std::string plural;
  bool namespaced = true;
  std::string kind;  // for messages and owner references

  [[nodiscard]] std::string ApiVersion() const {
    return group.empty() ? version : group + "/" + version;
  }
  // "/api/v1/namespaces/<ns>/pods[/<name>[/<sub>]]"; ns "" = all namespaces.
  [[nodiscard]] std::string Path(std::string_view ns, std::string_view name = "",
                                 std::string_view subresource = "") const;
};

namespace res {
extern const Resource kAsyncActors, kDeployments, kStatefulSets, kPods, kConfigMaps, kSecrets,
    kServiceAccounts, kServices, kEvents, kLeases, kHpas, kScaledObjects, kTriggerAuthentications;
}

bool IsConflict(const Error& e);
bool IsGone(const Error& e);
bool IsNotFound(const Error& e);

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
};

struct WatchOptions {
  std::string resource_version;
  std::string label_selector;
  int timeout_seconds = 300;  // server-side end of one watch call
  bool bookmarks = true;
};

// The shape every reader of a listed or watched object relies on: a JSON object whose `metadata`
// is an object, with name, namespace, resourceVersion, uid and deletionTimestamp strings,
// generation an integer, labels and annotations objects, when present. The API server always
// sends this; a proxy or a broken server may not. "" when well formed, else what is wrong.
std::string MalformedObject(const nlohmann::json& object);

// One line of a watch response (newline-delimited JSON events {"type", "object"}), decoded.
struct WatchEvent {
  enum class Kind {
    kSkip,    // nothing to deliver: an empty line, or a malformed event (`message` says why)
    kObject,  // `type` and a well-formed `object` (MalformedObject is "")
    kError,   // an ERROR event: `message`, `gone` for a 410 Status
  };
  Kind kind = Kind::kSkip;
  std::string type;              // ADDED, MODIFIED, DELETED, BOOKMARK
  nlohmann::json object;         // kObject
  std::string resource_version;  // kObject: metadata.resourceVersion, "" when absent
  bool gone = false;             // kError
  std::string message;
};
WatchEvent ParseWatchLine(std::string_view line);

// The error of a non-2xx API response (codes as at the top of this file): "<what>: HTTP <code>:
// <message>", the message taken from a Status body's `message` string, else the body itself.
Error StatusError(long code, std::string_view body, std::string_view what);

// One watch event: type ADDED/MODIFIED/DELETED/BOOKMARK, the object (well formed, see
// MalformedObject).
using WatchHandler = std::function<bool(const std::string& type, const nlohmann::json& object)>;

class Client {
 public:
  explicit Client(Config config, Clock* clock = nullptr);

  Result<nlohmann::json> Get(const Resource& r, std::string_view ns, std::string_view name) const;
  Result<nlohmann::json> List(const Resource& r, std::string_view ns,
                              const ListOptions& options = {}) const;
  Result<nlohmann::json> Create(const Resource& r, std::string_view ns,
                                const nlohmann::json& object) const;
  // PUT of the whole object (metadata.resourceVersion is the precondition: 409 when stale).
  Result<nlohmann::json> Update(const Resource& r, std::string_view ns,
                                const nlohmann::json& object) const;
  Result<nlohmann::json> UpdateStatus(const Resource& r, std::string_view ns,
                                      const nlohmann::json& object) const;
  // patch_type: "merge", "json", "strategic".
  Result<nlohmann::json> Patch(const Resource& r, std::string_view ns, std::string_view name,
                               const nlohmann::json& patch, std::string_view patch_type = "merge",
                               std::string_view subresource = "") const;
  // Server-side apply (content JSON), force=true.
  Result<nlohmann::json> Apply(const Resource& r, std::string_view ns, const nlohmann::json& object,
                               std::string_view field_manager,
                               std::string_view subresource = "") const;
  // Background propagation. kNotFound when missing.
  Status Delete(const Resource& r, std::string_view ns, std::string_view name) const;

  // One watch call: events go to `handler` until it returns false, the server ends the stream,
  // or `cancel` fires. Returns the last resourceVersion seen. An ERROR event with 410 or an HTTP
  // 410 is kResourceExhausted (IsGone: relist).
  Result<std::string> Watch(const Resource& r, std::string_view ns, const WatchOptions& options,
                            const WatchHandler& handler, http::CancelToken* cancel = nullptr) const;

  // A core/v1 Event about `object` (type Normal/Warning), reporting component `component`.
  Status RecordEvent(const nlohmann::json& object, std::string_view type, std::string_view reason,
                     std::string_view message, std::string_view component) const;

  [[nodiscard]] const Config& config() const { return config_; }

 private:
  Result<nlohmann::json> Call(std::string method, std::string path, std::string body,
                              std::string content_type) const;
  // The bearer header; the token file is read again when its metadata changed or `reread`.
  http::Headers AuthHeaders(bool reread = false) const;

  Config config_;
  Clock* clock_;
  std::unique_ptr<http::Client> http_;
  std::unique_ptr<http::Client> watch_http_;
  mutable std::mutex token_mu_;
  mutable std::string token_;
  mutable std::array<long long, 5> token_key_{-1, -1, -1, -1, -1};  // dev, ino, size, m/ctime
};

}  // namespace asya::k8s
