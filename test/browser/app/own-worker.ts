// A worker the page makes itself, as an app on another bundler would.
import { exposeHost } from 'intersession/worker'

exposeHost()
