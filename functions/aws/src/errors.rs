//! Classifying SDK errors as retryable or permanent.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;

const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailureException",
    "InternalServerException",
    "RequestTimeout",
    "SlowDown",
    "TransactionInProgressException",
];

/// True if the SDK error is transient: a timeout, a connection failure, a 5xx or throttling.
pub fn is_retryable<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    use aws_sdk_dynamodb::error::SdkError;
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => se
            .err()
            .code()
            .is_some_and(|c| RETRYABLE_CODES.contains(&c)),
        _ => false,
    }
}

/// A DynamoDB SDK error as the domain's store error, retryable or not, with its source kept
/// (the one mapping of the DynamoDB adapters).
pub(crate) fn store_backend<E, R>(
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> anpr_core::StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    anpr_core::StoreError::Backend {
        retryable: is_retryable(&e),
        source: Box::new(e),
    }
}
