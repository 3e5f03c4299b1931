use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};
use stratacache::{BoxError, Loaded, Loader};

/// A user, as stored and as served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The key.
    pub id: u64,
    /// The user's name.
    pub name: String,
    /// The user's e-mail address.
    pub email: String,
}

/// What `PUT /users/{id}` takes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserFields {
    /// The user's name (1 to 200 characters).
    pub name: String,
    /// The user's e-mail address (1 to 200 characters).
    pub email: String,
}

impl UserFields {
    /// Why these fields cannot be stored, if they cannot.
    #[must_use]
    pub fn problem(&self) -> Option<&'static str> {
        let fits = |field: &str| (1..=200).contains(&field.chars().count());
        if !fits(&self.name) {
            Some("name must be 1 to 200 characters")
        } else if !fits(&self.email) {
            Some("email must be 1 to 200 characters")
        } else {
            None
        }
    }
}

/// The `users` table (SQLite or Postgres, through sqlx's `Any` driver), counting the
/// queries it runs: the figure a cache exists to lower. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Users {
    pool: AnyPool,
    queries: Arc<AtomicU64>,
}

/// sqlx's `Any` driver takes 64-bit signed integers; larger ids are not in the table.
fn row_id(id: u64) -> Option<i64> {
    i64::try_from(id).ok()
}

impl Users {
    /// Connects to `url` and creates the table when it is missing.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached or the table cannot be created.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS users \
             (id BIGINT PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        Ok(Self {
            pool,
            queries: Arc::default(),
        })
    }

    /// How many queries this table has run.
    #[must_use]
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    fn counted(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    /// `SELECT … WHERE id IN (…)`: one query for any number of ids.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn find_many(&self, ids: &[u64]) -> Result<HashMap<u64, User>, sqlx::Error> {
        let ids: Vec<i64> = ids.iter().filter_map(|id| row_id(*id)).collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT id, name, email FROM users WHERE id IN ({})",
            placeholders.join(", ")
        );
        let query = ids
            .iter()
            .fold(sqlx::query(&sql), |query, id| query.bind(*id));
        self.counted();
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get("id")?;
                let id = u64::try_from(id).map_err(|error| sqlx::Error::Decode(error.into()))?;
                let user = User {
                    id,
                    name: row.try_get("name")?,
                    email: row.try_get("email")?,
                };
                Ok((id, user))
            })
            .collect()
    }

    /// Creates or replaces user `id`.
    ///
    /// # Errors
    ///
    /// The database's; a row-not-found error for an id beyond `i64::MAX`.
    pub async fn upsert(&self, id: u64, fields: UserFields) -> Result<User, sqlx::Error> {
        let row = row_id(id).ok_or(sqlx::Error::RowNotFound)?;
        self.counted();
        sqlx::query(
            "INSERT INTO users (id, name, email) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email",
        )
        .bind(row)
        .bind(&fields.name)
        .bind(&fields.email)
        .execute(&self.pool)
        .await?;
        Ok(User {
            id,
            name: fields.name,
            email: fields.email,
        })
    }

    /// Creates or replaces many users in one transaction (to fill a table quickly).
    ///
    /// # Errors
    ///
    /// The database's; a row-not-found error for an id beyond `i64::MAX`.
    pub async fn upsert_many(&self, users: &[User]) -> Result<(), sqlx::Error> {
        let mut transaction = self.pool.begin().await?;
        for chunk in users.chunks(300) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|n| format!("(${}, ${}, ${})", 3 * n + 1, 3 * n + 2, 3 * n + 3))
                .collect();
            let sql = format!(
                "INSERT INTO users (id, name, email) VALUES {} \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email",
                rows.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for user in chunk {
                let id = row_id(user.id).ok_or(sqlx::Error::RowNotFound)?;
                query = query.bind(id).bind(&user.name).bind(&user.email);
            }
            self.counted();
            query.execute(&mut *transaction).await?;
        }
        transaction.commit().await
    }

    /// Deletes user `id`; whether there was one.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn delete(&self, id: u64) -> Result<bool, sqlx::Error> {
        let Some(row) = row_id(id) else {
            return Ok(false);
        };
        self.counted();
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(row)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// The cache's loader: a miss reads the table; a batch of misses reads it once.
impl Loader<u64, User> for Users {
    async fn load(&self, id: &u64) -> Result<Option<Loaded<User>>, BoxError> {
        Ok(self.find_many(&[*id]).await?.remove(id).map(Loaded::new))
    }

    async fn load_many(&self, ids: &[u64]) -> Result<HashMap<u64, Loaded<User>>, BoxError> {
        let users = self.find_many(ids).await?;
        Ok(users
            .into_iter()
            .map(|(id, user)| (id, Loaded::new(user)))
            .collect())
    }
}
