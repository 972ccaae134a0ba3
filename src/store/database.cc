#include "gridd/store/database.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace gridd::store {
namespace {

[[noreturn]] void ThrowError(sqlite3* db, int code, std::string_view what) {
  throw StoreError(code,
                   std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(code)));
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
  // "unix-excl": the first access takes one exclusive POSIX lock for the whole process, and the
  // WAL index lives in this process's heap instead of a shared -shm file. Connections of this
  // process share both, so a transaction makes no locking system calls (two fcntl per read
  // transaction otherwise, 5 % of a server.get), and no other process can open the file while
  // gridd has it open: only gridd ever writes it (backups go through gridd, see BackupTo).
  const char* vfs = path == ":memory:" ? nullptr : "unix-excl";
  int rc = sqlite3_open_v2(path.c_str(), &db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
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
  auto it = statements_.find(sql);
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

namespace {
// The database whose writer connection the current thread holds inside Database::Write, and
// whether its reads go through that writer (Database::Atomic).
thread_local Database* writer_holder = nullptr;
thread_local bool reads_join_writer = false;
}  // namespace

Database::WriterScope::WriterScope(Database& db, bool reads_join)
    : previous(writer_holder), previous_reads_join(reads_join_writer) {
  writer_holder = &db;
  reads_join_writer = reads_join;
}
Database::WriterScope::~WriterScope() {
  writer_holder = previous;
  reads_join_writer = previous_reads_join;
}
bool Database::HoldsWriter() const { return writer_holder == this; }
bool Database::ReadsJoinWriter() const { return writer_holder == this && reads_join_writer; }

Database::Database(const std::string& path, int reader_connections)
    : path_(path), writer_(std::make_unique<Connection>(path)) {
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

void Database::BackupTo(const std::filesystem::path& destination) {
  if (path_ == ":memory:") throw StoreError(SQLITE_MISUSE, "an in-memory database has no backup");
  const std::filesystem::path partial = destination.string() + ".partial";
  std::filesystem::remove(partial);
  {
    // Create the file 0600 before SQLite opens it: a backup holds every secret gridd keeps
    // (sealed), and the account and key names in clear.
    int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
      throw StoreError(SQLITE_CANTOPEN,
                       "cannot create " + partial.string() + ": " + std::strerror(errno));
    }
    ::close(fd);
  }
  try {
    // A connection of its own: the copy is one read transaction (one snapshot), so it is
    // consistent, and in WAL mode it never blocks the writer.
    Connection source(path_);
    Connection target(partial.string());
    sqlite3_backup* backup = sqlite3_backup_init(target.handle(), "main", source.handle(), "main");
    if (backup == nullptr)
      ThrowError(target.handle(), sqlite3_errcode(target.handle()),
                 "backup to " + destination.string());
    const int rc = sqlite3_backup_step(backup, -1);
    sqlite3_backup_finish(backup);
    if (rc != SQLITE_DONE) ThrowError(target.handle(), rc, "backup to " + destination.string());
    // A self-contained file: a restore needs no -wal beside it.
    target.Exec("PRAGMA journal_mode = DELETE");
  } catch (...) {
    std::filesystem::remove(partial);
    throw;
  }
  int fd = ::open(partial.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::filesystem::rename(partial, destination);
  int dir_fd = ::open(destination.parent_path().empty() ? "." : destination.parent_path().c_str(),
                      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

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
