/** tsbuild's OCI core: types, digests, references, platforms, images, the store, layouts and archives. */
export { MediaType } from './types.js';
export type { KnownMediaType, Platform, Descriptor, ImageManifest, ImageIndex, HealthConfig, ContainerConfig, History, ImageConfig } from './types.js';
export { parseDigest, isDigest, digestAlgorithm, digestHex, sha256, DigestingStream, InvalidDigestError } from './digest.js';
export type { Digest } from './digest.js';
export { parseReference, formatReference, familiarName, familiarString, repositoryName, withTag, InvalidReferenceError, DOCKER_HUB_DOMAIN } from './reference.js';
export type { Reference } from './reference.js';
export { parsePlatform, formatPlatform, normalizePlatform, hostPlatform, platformMatches, platformScore, selectManifest, InvalidPlatformError } from './platform.js';
export {
  detectCompression,
  compressionOfMediaType,
  layerMediaType,
  compressStream,
  decompressStream,
  autoDecompress,
  compressLayer,
  digestLayerBlob,
  nativeZstd,
  CompressionError,
} from './compress.js';
export type { Compression, CompressOptions, LayerDigests } from './compress.js';
export {
  blobLayer,
  tarLayer,
  importTarLayer,
  loadManifest,
  imageFromRaw,
  indexFromRaw,
  resolveImage,
  selectImage,
  parseManifest,
  parseIndex,
  parseConfig,
  emptyImage,
  appendLayers,
  appendHistory,
  withConfig,
  withAnnotations,
  withFlavour,
  buildIndex,
  writeImage,
  collectBlobs,
  ManifestError,
  PlatformNotFoundError,
} from './image.js';
export type { Layer, Image, Index, ImageOrIndex, Addendum, TarLayerOptions, WriteImageOptions } from './image.js';
export {
  Store,
  resolveRootDir,
  putBlobFile,
  writeFileAtomic,
  syncBlobDirs,
  verifyingStream,
  childDescriptors,
  mediaTypeOf,
  BlobNotFoundError,
  DigestMismatchError,
  SizeMismatchError,
  TagNotFoundError,
} from './store.js';
export type { BlobSource, BlobSink, BlobInput, StoreOptions, TagEntry, GcOptions, GcResult } from './store.js';
export { OciLayout, writeOciArchive, readOciArchive, archiveLayout, TarWriter, REF_NAME_ANNOTATION, LayoutError } from './layout.js';
export type { LayoutEntry, ArchiveOptions } from './layout.js';
export { writeDockerArchive, readDockerArchive, DockerArchiveError } from './docker-archive.js';
export type { DockerArchiveImage, DockerArchiveManifestEntry } from './docker-archive.js';
export { extractLayer, resolveInRoot, safeComponents, UnsafePathError, ExtractError } from './extract.js';
export type { ExtractOptions, ExtractResult } from './extract.js';

// ---- registry client (helper F: src/oci/registry/) ----------------------------------------
export {
  RegistryClient,
  bufferSource,
  isLoopbackRegistry,
  registryApiHost,
  MANIFEST_ACCEPT,
  RegistryAuth,
  parseWwwAuthenticate,
  basicHeader,
  repositoryScope,
  dockerCredentials,
  dockerConfigPath,
  runCredentialHelper,
  DOCKER_HUB_CONFIG_KEY,
  RegistryError,
  parseErrorBody,
  pull,
  push,
} from './registry/index.js';
export type {
  AuthSetting,
  UploadSource,
  ManifestResult,
  RegistryClientOptions,
  UploadOptions,
  UploadResult,
  Challenge,
  Credentials,
  AuthOptions,
  DockerConfigOptions,
  RegistryErrorCode,
  RegistryErrorEntry,
  RegistryErrorTarget,
  PullOptions,
  PullResult,
  TransferEvent,
  TransferOptions,
  PushOptions,
  PushResult,
} from './registry/index.js';
// ---- end registry client ------------------------------------------------------------------
export { compressStoredImage } from './recompress.js';
export type { RecompressOptions } from './recompress.js';
