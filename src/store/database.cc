#include "gridd/store/database.h"

namespace gridd::store {
namespace {

[[noreturn]] void ThrowError(sqlite3* db, int code, std::string_view what) {
  throw StoreError(code, std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(code)));
}

}  // namespace

Statement& Statement::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) ThrowError(db_, rc, "bind");
  return *this;
}

Statement& Statement::Bind(int index, double value) {
  int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK) ThrowError(db_, rc, "bind");
  return *this;
}

Statement& Statement::Bind(int index, std::string_view value) {
  int rc = sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                             SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) ThrowError(db_, rc, "bind");
  return *this;
}

Statement& Statement::BindBlob(int index, std::string_view value) {
  int rc = sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()),
                             SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) ThrowError(db_, rc, "bind");
  return *this;
}

Statement& Statement::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) ThrowError(db_, rc, "bind");
  return *this;
}

bool Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  std::string sql = sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : "";
  sqlite3_reset(stmt_);
  ThrowError(db_, rc, "step [" + sql.substr(0, 80) + "]");
}

bool Statement::IsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}
int64_t Statement::Int(int column) const { return sqlite3_column_int64(stmt_, column); }
double Statement::Double(int column) const { return sqlite3_column_double(stmt_, column); }

std::string Statement::Text(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::string Statement::Blob(int column) const {
  const void* blob = sqlite3_column_blob(stmt_, column);
  if (blob == nullptr) return {};
  return std::string(static_cast<const char*>(blob),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::optional<int64_t> Statement::OptionalInt(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Int(column);
}

std::optional<std::string> Statement::OptionalText(int column) const {
  if (IsNull(column)) return std::nullopt;
  return Text(column);
}

Connection::Connection(const std::string& path) {
  int rc = sqlite3_open_v2(path.c_str(), &db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError(rc, "cannot open database " + path + ": " + message);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, 10000);
  Exec("PRAGMA foreign_keys = ON");
}

Connection::~Connection() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

void Connection::Exec(std::string_view sql) {
  std::string text(sql);
  char* error = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    throw StoreError(rc, "exec [" + text.substr(0, 80) + "]: " + message);
  }
}

Statement Connection::Prepare(std::string_view sql) {
  auto it = statements_.find(std::string(sql));
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) ThrowError(db_, rc, "prepare [" + std::string(sql.substr(0, 80)) + "]");
    it = statements_.emplace(std::string(sql), stmt).first;
  }
  sqlite3_reset(it->second);
  sqlite3_clear_bindings(it->second);
  return Statement(db_, it->second);
}

int64_t Connection::LastInsertId() const { return sqlite3_last_insert_rowid(db_); }
int Connection::Changes() const { return sqlite3_changes(db_); }

Database::Database(const std::string& path, int reader_connections) {
  writer_ = std::make_unique<Connection>(path);
  const bool in_memory = path == ":memory:";
  if (!in_memory) {
    writer_->Exec("PRAGMA journal_mode = WAL");
    // WAL with synchronous=FULL: a commit that answered the client survives power loss.
    writer_->Exec("PRAGMA synchronous = FULL");
  }
  schema_version_ = Migrate(*writer_);
  if (!in_memory) {
    for (int i = 0; i < reader_connections; ++i) {
      readers_.push_back(std::make_unique<Connection>(path));
      readers_.back()->Exec("PRAGMA query_only = ON");
      free_readers_.push_back(readers_.back().get());
    }
  }
}

Database::~Database() = default;

Database::ReaderLease::ReaderLease(Database& database) : db(database) {
  std::unique_lock<std::mutex> lock(db.readers_mutex_);
  db.reader_available_.wait(lock, [&] { return !db.free_readers_.empty(); });
  connection = db.free_readers_.back();
  db.free_readers_.pop_back();
}

Database::ReaderLease::~ReaderLease() {
  {
    std::lock_guard<std::mutex> lock(db.readers_mutex_);
    db.free_readers_.push_back(connection);
  }
  db.reader_available_.notify_one();
}

}  // namespace gridd::store
