#include <fstream>
#include <sstream>
#include <string>

#include <sys/stat.h>

#include "asya/actor/manifest.h"
#include "asya/base/base64.h"
#include "asya/k8s/client.h"

namespace asya::k8s {
namespace {

using nlohmann::json;

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::kNotFound, "cannot read " + path);
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

std::string Str(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json& Member(const json& obj, const char* key) {
  static const json empty = json::array();
  auto it = obj.find(key);
  return it != obj.end() ? *it : empty;
}

const json* Named(const json& list, const std::string& name, const char* inner) {
  if (!list.is_array()) {
    return nullptr;
  }
  for (const auto& item : list) {
    if (item.is_object() && Str(item, "name") == name) {
      auto it = item.find(inner);
      return it != item.end() && it->is_object() ? &*it : nullptr;
    }
  }
  return nullptr;
}

std::string Resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) {
    return path;
  }
  return base_dir + "/" + path;
}

// A "*-data" field: Base64 of the PEM text ("" when absent).
Result<std::string> DataField(const json& object, const char* key, const std::string& where) {
  auto bytes = Base64Decode(Str(object, key));
  if (!bytes) {
    return MakeError(ErrorCode::kInvalidArgument,
                     where + "." + key + ": not valid Base64 (RFC 4648, standard alphabet)");
  }
  return *std::move(bytes);
}

}  // namespace

Result<Config> InClusterConfig(const std::string& host, const std::string& port,
                               const std::string& sa_dir) {
  if (host.empty()) {
    return MakeError(ErrorCode::kNotFound, "not in a cluster: KUBERNETES_SERVICE_HOST is not set");
  }
  Config c;
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  c.server = "https://" + h + ":" + (port.empty() ? "443" : port);
  c.token_file = sa_dir + "/token";
  struct stat st {};
  if (::stat(c.token_file.c_str(), &st) != 0) {
    return MakeError(ErrorCode::kNotFound,
                     "in-cluster config: no service-account token at " + c.token_file);
  }
  c.tls.ca_file = sa_dir + "/ca.crt";
  if (auto ns = ReadFile(sa_dir + "/namespace")) {
    c.ns = Trim(*ns);
  }
  if (c.ns.empty()) {
    c.ns = "default";
  }
  return c;
}

Result<Config> ParseKubeconfig(std::string_view text, const std::string& source,
                               const std::string& context, const std::string& base_dir) {
  auto docs = actor::ParseYamlDocuments(text, source);
  if (!docs) {
    return Unexpected(docs.error());
  }
  if (docs->size() != 1 || !(*docs)[0].is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, source + ": not a kubeconfig (one mapping)");
  }
  const json& kc = (*docs)[0];
  std::string ctx_name = context.empty() ? Str(kc, "current-context") : context;
  if (ctx_name.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, source + ": current-context: not set");
  }
  const json* ctx = Named(Member(kc, "contexts"), ctx_name, "context");
  if (ctx == nullptr) {
    return MakeError(ErrorCode::kInvalidArgument,
                     source + ": contexts: no context named \"" + ctx_name + "\"");
  }
  std::string cluster_name = Str(*ctx, "cluster");
  const json* cluster = Named(Member(kc, "clusters"), cluster_name, "cluster");
  if (cluster == nullptr) {
    return MakeError(ErrorCode::kInvalidArgument,
                     source + ": clusters: no cluster named \"" + cluster_name + "\"");
  }
  Config c;
  c.server = Str(*cluster, "server");
  if (c.server.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     source + ": clusters[" + cluster_name + "].server: not set");
  }
  while (!c.server.empty() && c.server.back() == '/') {
    c.server.pop_back();
  }
  ASYA_ASSIGN_OR_RETURN(c.tls.ca_data, DataField(*cluster, "certificate-authority-data",
                                                 source + ": clusters[" + cluster_name + "]"));
  c.tls.ca_file = Resolve(Str(*cluster, "certificate-authority"), base_dir);
  auto skip = cluster->find("insecure-skip-tls-verify");
  c.tls.insecure_skip_verify = skip != cluster->end() && skip->is_boolean() && skip->get<bool>();
  c.ns = Str(*ctx, "namespace");
  if (c.ns.empty()) {
    c.ns = "default";
  }
  std::string user_name = Str(*ctx, "user");
  if (!user_name.empty()) {
    const json* user = Named(Member(kc, "users"), user_name, "user");
    if (user == nullptr) {
      return MakeError(ErrorCode::kInvalidArgument,
                       source + ": users: no user named \"" + user_name + "\"");
    }
    c.token = Str(*user, "token");
    c.token_file = Resolve(Str(*user, "tokenFile"), base_dir);
    const std::string where = source + ": users[" + user_name + "]";
    ASYA_ASSIGN_OR_RETURN(c.tls.client_cert_data,
                          DataField(*user, "client-certificate-data", where));
    ASYA_ASSIGN_OR_RETURN(c.tls.client_key_data, DataField(*user, "client-key-data", where));
    c.tls.client_cert_file = Resolve(Str(*user, "client-certificate"), base_dir);
    c.tls.client_key_file = Resolve(Str(*user, "client-key"), base_dir);
  }
  return c;
}

Result<Config> LoadKubeconfig(const std::string& path, const std::string& context) {
  auto text = ReadFile(path);
  if (!text) {
    return Unexpected(text.error());
  }
  std::string dir;
  if (auto slash = path.rfind('/'); slash != std::string::npos) {
    dir = path.substr(0, slash);
  }
  return ParseKubeconfig(*text, path, context, dir);
}

}  // namespace asya::k8s
