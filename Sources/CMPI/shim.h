// Open MPI's C API. Its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, …) are macros over addresses of
// library globals, which Swift cannot import; each is exposed here as a one-line inline function.
#include <mpi.h>

static inline MPI_Comm collie_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm collie_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Datatype collie_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype collie_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype collie_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op collie_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op collie_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op collie_mpi_min(void) { return MPI_MIN; }
static inline void *collie_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Request collie_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *collie_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Status *collie_mpi_statuses_ignore(void) { return MPI_STATUSES_IGNORE; }
