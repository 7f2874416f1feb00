// Kubeconfig and in-cluster configuration parsing, resource paths, base64.
#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "asya/k8s/client.h"

namespace asya::k8s {
namespace {

constexpr const char* kKubeconfig = R"(apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: http://127.0.0.1:8080/
- name: prod
  cluster:
    server: https://10.0.0.1:6443
    certificate-authority-data: aGVsbG8=
    insecure-skip-tls-verify: true
users:
- name: fake
  user:
    token: fake-token
- name: admin
  user:
    client-certificate: certs/admin.crt
    client-key-data: a2V5
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: team
- name: prod
  context:
    cluster: prod
    user: admin
current-context: fake
)";

TEST(Kubeconfig, CurrentContext) {
  auto c = ParseKubeconfig(kKubeconfig, "kc", "", "/home/u/.kube");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server, "http://127.0.0.1:8080");
  EXPECT_EQ(c->token, "fake-token");
  EXPECT_EQ(c->ns, "team");
  EXPECT_FALSE(c->tls.insecure_skip_verify);
}

TEST(Kubeconfig, NamedContextWithCertificates) {
  auto c = ParseKubeconfig(kKubeconfig, "kc", "prod", "/home/u/.kube");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->tls.ca_data, "hello");
  EXPECT_TRUE(c->tls.insecure_skip_verify);
  EXPECT_EQ(c->tls.client_cert_file, "/home/u/.kube/certs/admin.crt");
  EXPECT_EQ(c->tls.client_key_data, "key");
  EXPECT_EQ(c->ns, "default");
  EXPECT_EQ(c->token, "");
}

TEST(Kubeconfig, ErrorsNameTheField) {
  auto c = ParseKubeconfig(kKubeconfig, "kc", "staging");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message.find("kc: contexts: no context named \"staging\""), std::string::npos)
      << c.error().message;
  auto d = ParseKubeconfig("clusters: []\n", "kc2");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("current-context"), std::string::npos);
  auto e = ParseKubeconfig("a: [", "kc3");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code, ErrorCode::kInvalidArgument);
}

TEST(Kubeconfig, DataThatIsNotBase64IsRefusedNamingTheField) {
  std::string text = kKubeconfig;
  text.replace(text.find("a2V5"), 4, "a2V5!");
  auto c = ParseKubeconfig(text, "kc", "prod");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(c.error().message,
            "kc: users[admin].client-key-data: not valid Base64 (RFC 4648, standard alphabet)");
  text = kKubeconfig;
  text.replace(text.find("aGVsbG8="), 8, "aGVsbG8");
  auto d = ParseKubeconfig(text, "kc", "prod");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().message.find("clusters[prod].certificate-authority-data"), std::string::npos)
      << d.error().message;
}

TEST(InCluster, ReadsServiceAccountDirectory) {
  char dir[] = "/tmp/asya-k8s-sa-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string d = dir;
  EXPECT_FALSE(InClusterConfig("10.0.0.1", "443", d));  // no token yet
  std::ofstream(d + "/token") << "tok\n";
  std::ofstream(d + "/namespace") << "asya-system\n";
  auto c = InClusterConfig("10.0.0.1", "6443", d);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->token_file, d + "/token");
  EXPECT_EQ(c->tls.ca_file, d + "/ca.crt");
  EXPECT_EQ(c->ns, "asya-system");
  EXPECT_FALSE(InClusterConfig("", "443", d));
  std::remove((d + "/token").c_str());
  std::remove((d + "/namespace").c_str());
  std::remove(dir);
}

TEST(Resource, Paths) {
  EXPECT_EQ(res::kPods.Path("default"), "/api/v1/namespaces/default/pods");
  EXPECT_EQ(res::kPods.Path(""), "/api/v1/pods");
  EXPECT_EQ(res::kAsyncActors.Path("ns", "echo", "status"),
            "/apis/asya.sh/v1alpha1/namespaces/ns/asyncactors/echo/status");
  EXPECT_EQ(res::kLeases.ApiVersion(), "coordination.k8s.io/v1");
}

}  // namespace
}  // namespace asya::k8s
