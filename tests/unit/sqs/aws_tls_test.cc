// TLS with certificate verification for SQS and S3: moto_server behind TLS with a certificate
// signed by a test CA made here with the openssl CLI. The right CA (AWS_CA_BUNDLE's value) works;
// another CA, or none (the system store does not know the test CA), is refused with an error
// naming the certificate problem. Cost: ~3 s (one moto_server, four openssl calls).
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "asya/aws/credentials.h"
#include "asya/aws/http.h"
#include "asya/crew/crew.h"
#include "asya/transport/sqs.h"
#include "support/temp_dir.h"
#include "unit/sqs/moto_server.h"

namespace asya {
namespace {

void Shell(const std::string& cmd) {
  ASSERT_EQ(std::system((cmd + " >/dev/null 2>&1").c_str()), 0) << cmd;
}

class AwsTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir("asya-awstls");
    const std::string d = dir_->path();
    const std::string req = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 ";
    Shell(req + "-subj /CN=asya-test-ca -keyout " + d + "/ca.key -out " + d + "/ca.pem");
    Shell(req + "-subj /CN=another-ca -keyout " + d + "/other.key -out " + d + "/other.pem");
    Shell("openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout " + d +
          "/server.key -out " + d + "/server.csr");
    dir_->Write("san.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    Shell("openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " + d +
          "/ca.key -CAcreateserial -days 1 -extfile " + d + "/san.ext -out " + d + "/server.pem");
    moto_ = new test::MotoServer();
    moto_->UseTls(d + "/server.pem", d + "/server.key");
    ASSERT_TRUE(moto_->Start()) << moto_->error();
  }
  static void TearDownTestSuite() {
    delete moto_;
    delete dir_;
    aws::ConfigureTls({});
  }

  static std::string Ca() { return dir_->File("ca.pem"); }
  static std::string OtherCa() { return dir_->File("other.pem"); }

  static Result<transport::TransportPtr> Sqs() {
    transport::SqsSettings s;
    s.endpoint = moto_->endpoint();
    s.access_key_id = "test";
    s.secret_access_key = "test";
    s.queue_retry_max_attempts = 1;
    return transport::MakeSqsTransport(s);
  }

  static Status SqsRoundTrip() {
    ASYA_ASSIGN_OR_RETURN(auto t, Sqs());
    ASYA_RETURN_IF_ERROR(t->CreateQueue("asya-tls", {.create_dlq = false}));
    ASYA_RETURN_IF_ERROR(t->Publish("asya-tls", "over tls"));
    return Ok();
  }

  static Status S3Put(const std::string& ca_file) {
    crew::S3Options o{.bucket = "tls-bucket", .endpoint = moto_->endpoint()};
    o.tls.ca_file = ca_file;
    auto keys = std::make_shared<aws::CredentialProvider>(
        aws::CredentialSources{.access_key_id = "testing", .secret_access_key = "testing"});
    crew::S3Sink sink(o, keys, SystemClock());
    return sink.Put("k.json", "{}");
  }

  static inline test::TempDir* dir_ = nullptr;
  static inline test::MotoServer* moto_ = nullptr;
};

TEST_F(AwsTls, SqsVerifiesTheServerWithTheConfiguredCa) {
  aws::ConfigureTls({.ca_file = Ca()});
  auto ok = SqsRoundTrip();
  EXPECT_TRUE(ok) << ok.error().ToString();

  aws::ConfigureTls({.ca_file = OtherCa()});
  auto wrong = SqsRoundTrip();
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("certificate"), std::string::npos) << wrong.error().message;
  EXPECT_NE(wrong.error().message.find("https://127.0.0.1:"), std::string::npos)
      << wrong.error().message;

  aws::ConfigureTls({});  // the system store does not know the test CA
  EXPECT_FALSE(SqsRoundTrip());
  aws::ConfigureTls({.ca_file = dir_->File("missing.pem")});
  auto missing = SqsRoundTrip();
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("missing.pem"), std::string::npos)
      << missing.error().message;
}

TEST_F(AwsTls, S3VerifiesTheServerWithTheConfiguredCa) {
  auto ok = S3Put(Ca());
  EXPECT_TRUE(ok) << ok.error().ToString();
  auto wrong = S3Put(OtherCa());
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message.find("certificate"), std::string::npos) << wrong.error().message;
  EXPECT_FALSE(S3Put(""));
}

}  // namespace
}  // namespace asya
