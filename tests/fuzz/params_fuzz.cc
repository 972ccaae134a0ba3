// The parameter parser fed hostile query strings, form bodies and content types: it either
// parses or throws gridd::ApiError (a 400 to the client), never anything else, and every
// name it returns can be looked up again.
#include <cstdint>
#include <cstdlib>

#include "fuzz_input.h"
#include "gridd/api/params.h"
#include "gridd/common/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto fields = gridd::fuzz::SplitFields(data, size, 3);
  const std::string& target = fields[0];
  const std::string& content_type = fields[1];
  const std::string& body = fields[2];
  try {
    const auto params = gridd::api::Params::FromRequest(target, content_type, body);
    for (const auto& [name, value] : params.pairs()) {
      if (!params.Has(name)) std::abort();
      if (params.GetAll(name).empty()) std::abort();
    }
    (void)gridd::api::PathOf(target);
  } catch (const gridd::ApiError&) {
    // Malformed percent-encoding: refused with a 400, as documented.
  }
  try {
    (void)gridd::api::Params::ParseUrlEncoded(body);
  } catch (const gridd::ApiError&) {
  }
  return 0;
}
